package tokenizer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"
)

// MaxWorkers bounds the worker counts of the functions that take one.
const MaxWorkers = 1024

// workerCount returns the number of goroutines for a worker setting w:
// GOMAXPROCS for 0, w for 1..MaxWorkers, an error otherwise.
func workerCount(w int) (int, error) {
	switch {
	case w == 0:
		return runtime.GOMAXPROCS(0), nil
	case w < 0 || w > MaxWorkers:
		return 0, fmt.Errorf("workers %d is out of range: want 0 (all cores) to %d", w, MaxWorkers)
	}
	return w, nil
}

// EncodeBatch encodes each text on workers goroutines (0: GOMAXPROCS, at
// most MaxWorkers); out[i] holds the ids of texts[i].
func (t *Tokenizer) EncodeBatch(ctx context.Context, texts [][]byte, allowSpecial bool, workers int) ([][]int32, error) {
	workers, err := workerCount(workers)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	workers = max(1, min(workers, len(texts)))
	out := make([][]int32, len(texts))
	var next int64
	var mu sync.Mutex
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		i := int(next)
		next++
		return i
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := take(); i < len(texts) && ctx.Err() == nil; i = take() {
				out[i] = t.AppendEncode(nil, texts[i], allowSpecial)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// DefaultMaxLine is the longest JSONL input line accepted by default
// (LineOptions.MaxLine), and DefaultMaxSegment the default
// StreamOptions.MaxSegment; MaxLimit bounds both settings.
const (
	DefaultMaxLine    = 32 << 20
	DefaultMaxSegment = 32 << 20
	MaxLimit          = 1 << 30
)

// ErrTooLong is wrapped by the errors for inputs longer than a configured
// limit (LineOptions.MaxLine, StreamOptions.MaxSegment).
var ErrTooLong = errors.New("too long")

// limitSetting returns the limit for setting v of the named option: def
// for 0, v for 1..MaxLimit, an error otherwise.
func limitSetting(name string, v, def int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 || v > MaxLimit:
		return 0, fmt.Errorf("%s %d is out of range: want 1 to %d bytes (0: %d)", name, v, MaxLimit, def)
	}
	return v, nil
}

// LineOptions configure EncodeJSONL, ChatJSONL and DecodeJSONL.
type LineOptions struct {
	// Workers process lines in parallel, at most MaxWorkers (0: GOMAXPROCS).
	Workers int
	// MaxLine is the longest input line in bytes, its newline excluded, at
	// most MaxLimit (0: DefaultMaxLine). A longer line is an error
	// wrapping ErrTooLong. About 2×MaxLine input bytes (at least a few
	// MiB per worker) are in processing at once.
	MaxLine int
}

// lineBatch is a group of input lines processed by one worker.
type lineBatch struct {
	first int    // line number of the first line, from 1
	data  []byte // the lines, without their newlines
	ends  []int  // line i is data[ends[i-1]:ends[i]]
	units int    // units of the in-flight budget held
	out   bytes.Buffer
	err   error
	done  chan struct{}
}

// line returns line i of the batch.
func (b *lineBatch) line(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.data[start:b.ends[i]]
}

// Lines are grouped into batches of up to batchLines lines or batchBytes
// bytes; the input bytes in flight are counted in budgetUnit units.
const (
	batchLines = 1024
	batchBytes = 1 << 20
	budgetUnit = 1 << 20
)

// readLine appends the next line of br, without its newline, to dst. ok
// reports whether there was a line (false only at the end of the input);
// err is io.EOF after the last line. A line longer than limit bytes is
// not appended: the rest of it is read and dropped and the error, which
// wraps ErrTooLong, gives its length.
func readLine(br *bufio.Reader, dst []byte, limit int) (out []byte, ok bool, err error) {
	start := len(dst)
	for {
		frag, rerr := br.ReadSlice('\n')
		ok = ok || len(frag) > 0
		if rerr == nil {
			frag = frag[:len(frag)-1] // the newline
		}
		if n := int64(len(dst) - start + len(frag)); n > int64(limit) {
			// Measure the whole line for the error, dropping it.
			for errors.Is(rerr, bufio.ErrBufferFull) {
				frag, rerr = br.ReadSlice('\n')
				n += int64(len(frag))
				if rerr == nil {
					n-- // the newline
				}
			}
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return dst[:start], true, rerr
			}
			return dst[:start], true, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLong, n, limit)
		}
		dst = append(dst, frag...)
		if !errors.Is(rerr, bufio.ErrBufferFull) {
			return dst, ok, rerr
		}
	}
}

// processLines reads lines from r, applies fn to each on workers
// goroutines and writes the outputs to w in input order. fn appends its
// output line (without the newline) to the buffer. Errors name the line.
func processLines(ctx context.Context, r io.Reader, w io.Writer, o LineOptions, fn func(line []byte, out *bytes.Buffer) error) error {
	workers, err := workerCount(o.Workers)
	if err != nil {
		return err
	}
	maxLine, err := limitSetting("max line", o.MaxLine, DefaultMaxLine)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *lineBatch, workers)
	order := make(chan *lineBatch, 2*workers)
	// budget bounds the input bytes in flight (read, not yet written out):
	// a batch holds one unit per started budgetUnit bytes.
	units := func(n int) int { return n/budgetUnit + 1 }
	budget := make(chan struct{}, max(3*workers, 2*units(maxLine)+2))
	acquire := func(n int) bool {
		for range n {
			select {
			case budget <- struct{}{}:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	var readErr error
	go func() {
		defer close(work)
		defer close(order)
		br := bufio.NewReaderSize(r, 1<<16)
		line := 0
		for {
			b := &lineBatch{first: line + 1, done: make(chan struct{})}
			var err error
			for len(b.ends) < batchLines && len(b.data) < batchBytes {
				var ok bool
				b.data, ok, err = readLine(br, b.data, maxLine)
				if ok && (err == nil || errors.Is(err, io.EOF)) {
					b.ends = append(b.ends, len(b.data))
				}
				if err != nil {
					break
				}
				line++
			}
			if len(b.ends) > 0 {
				b.units = units(len(b.data))
				if !acquire(b.units) {
					return
				}
				select {
				case order <- b:
				case <-ctx.Done():
					return
				}
				select {
				case work <- b:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = fmt.Errorf("line %d: %w", line+1, err)
				}
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				for i := range b.ends {
					n := b.out.Len()
					if err := fn(b.line(i), &b.out); err != nil {
						b.out.Truncate(n)
						b.err = fmt.Errorf("line %d: %w", b.first+i, err)
						break
					}
					b.out.WriteByte('\n')
				}
				b.data = nil
				close(b.done)
			}
		}()
	}
	defer wg.Wait()
	bw := bufio.NewWriterSize(w, 1<<20)
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			cancel()
			bw.Write(b.out.Bytes()) // the lines before the failed one
			if err := bw.Flush(); err != nil {
				return err
			}
			return b.err
		}
		if _, err := bw.Write(b.out.Bytes()); err != nil {
			cancel()
			return err
		}
		for range b.units {
			<-budget
		}
		b.out = bytes.Buffer{}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if readErr != nil {
		if err := bw.Flush(); err != nil {
			return err
		}
		return readErr
	}
	return bw.Flush()
}

// appendIDs appends a JSON array of ids.
func appendIDs(b []byte, ids []int32) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return append(b, ']')
}

func appendMask(b []byte, m []bool) []byte {
	b = append(b, '[')
	for i, v := range m {
		if i > 0 {
			b = append(b, ',')
		}
		if v {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	return append(b, ']')
}

// EncodeOptions choose how EncodeJSONL encodes each text.
type EncodeOptions struct {
	// AllowSpecial encodes special-token texts as their ids (see
	// AppendEncode).
	AllowSpecial bool
	// AddBOS starts every text's ids with the BOS of PrefixBOS (if the
	// tokenizer has one), as Hugging Face's add_special_tokens=True does.
	AddBOS bool
}

// EncodeJSONL reads lines {"text": "…"} from r and writes one line
// {"ids": […]} per input line to w, in input order, encoding in parallel
// (see LineOptions). Blank lines are errors (every input line gets an
// output line). On an error, the outputs of the lines before the failed
// one are written.
func (t *Tokenizer) EncodeJSONL(ctx context.Context, r io.Reader, w io.Writer, eo EncodeOptions, o LineOptions) error {
	var prefix []int32
	if bos, ok := t.PrefixBOS(); ok && eo.AddBOS {
		prefix = []int32{bos}
	}
	return processLines(ctx, r, w, o, func(line []byte, out *bytes.Buffer) error {
		var in struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return fmt.Errorf("want {\"text\": string}: %w", err)
		}
		if in.Text == nil {
			return errors.New("no \"text\" field")
		}
		ids := t.AppendEncode(append([]int32(nil), prefix...), []byte(*in.Text), eo.AllowSpecial)
		out.WriteString(`{"ids":`)
		out.Write(appendIDs(nil, ids))
		out.WriteByte('}')
		return nil
	})
}

// ChatJSONL reads chat requests (see ParseChatRequest) from r and writes
// one line {"ids": […]} per request to w, in order; with masks also
// "target" and "format" arrays of 0/1 (see Chat).
func (t *Tokenizer) ChatJSONL(ctx context.Context, r io.Reader, w io.Writer, masks bool, o LineOptions) error {
	return processLines(ctx, r, w, o, func(line []byte, out *bytes.Buffer) error {
		req, err := ParseChatRequest(line)
		if err != nil {
			return err
		}
		c, err := t.RenderChat(req.Messages, req.Options)
		if err != nil {
			return err
		}
		out.WriteString(`{"ids":`)
		out.Write(appendIDs(nil, c.IDs))
		if masks {
			out.WriteString(`,"target":`)
			out.Write(appendMask(nil, c.Target))
			out.WriteString(`,"format":`)
			out.Write(appendMask(nil, c.Format))
		}
		out.WriteByte('}')
		return nil
	})
}

// DecodeJSONL reads lines {"ids": […]} and writes {"text": "…"} lines
// (invalid UTF-8 in a decoded text becomes U+FFFD, as JSON strings cannot
// hold it).
func (t *Tokenizer) DecodeJSONL(ctx context.Context, r io.Reader, w io.Writer, o LineOptions) error {
	return processLines(ctx, r, w, o, func(line []byte, out *bytes.Buffer) error {
		var in struct {
			IDs *[]int32 `json:"ids"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return fmt.Errorf("want {\"ids\": [int, …]}: %w", err)
		}
		if in.IDs == nil {
			return errors.New("no \"ids\" field")
		}
		text, err := t.Decode(*in.IDs)
		if err != nil {
			return err
		}
		out.WriteString(`{"text":`)
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(string(text)); err != nil {
			return err
		}
		out.Truncate(out.Len() - 1) // Encode's newline
		out.WriteByte('}')
		return nil
	})
}
