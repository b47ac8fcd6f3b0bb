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

func defaultWorkers(w int) int {
	if w <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return w
}

// EncodeBatch encodes each text on workers goroutines (0: GOMAXPROCS);
// out[i] holds the ids of texts[i].
func (t *Tokenizer) EncodeBatch(ctx context.Context, texts [][]byte, allowSpecial bool, workers int) ([][]int32, error) {
	out := make([][]int32, len(texts))
	workers = defaultWorkers(workers)
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

// EncodeParallel encodes one large text on workers goroutines, with the
// same result as AppendEncode: the text is cut into chunks only where a
// pre-token must end (and never inside a special token), the chunks are
// encoded in parallel and their ids concatenated in order.
func (t *Tokenizer) EncodeParallel(ctx context.Context, text []byte, allowSpecial bool, workers int) ([]int32, error) {
	workers = defaultWorkers(workers)
	if workers == 1 || len(text) < 2*chunkSize {
		return t.AppendEncode(nil, text, allowSpecial), nil
	}
	var chunks [][]byte
	for len(text) > 0 {
		n := min(len(text), chunkSize)
		p := len(text)
		if n < len(text) {
			p = t.safeCut(text, n, allowSpecial)
		}
		chunks = append(chunks, text[:p])
		text = text[p:]
	}
	parts, err := t.EncodeBatch(ctx, chunks, allowSpecial, workers)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	out := make([]int32, 0, total)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// safeCut returns a cut point of text at or after about n bytes (see
// cutPoint), not inside a special token when those are recognised, or
// len(text).
func (t *Tokenizer) safeCut(text []byte, n int, allowSpecial bool) int {
	for end := n; ; end = min(end+chunkSize, len(text)) {
		window := text[:end]
		for {
			p := cutPoint(window)
			if p <= 0 {
				break
			}
			if !allowSpecial || !t.specialCovers(text, p) {
				return p
			}
			window = window[:p]
		}
		if end == len(text) {
			return len(text)
		}
	}
}

// specialCovers reports whether a special token found by the encoder spans
// position p (starts before p and ends after it).
func (t *Tokenizer) specialCovers(text []byte, p int) bool {
	if len(t.specials.lens) == 0 {
		return false
	}
	maxLen := t.specials.lens[0]
	from := max(0, p-maxLen)
	for s := text[from:min(len(text), p+maxLen)]; ; {
		pos, end, _ := t.specials.find(s)
		if pos < 0 {
			return false
		}
		if from+pos < p && from+end > p {
			return true
		}
		s, from = s[end:], from+end
	}
}

// lineBatch is a group of input lines processed by one worker.
type lineBatch struct {
	first int // line number of lines[0], from 1
	lines [][]byte
	out   bytes.Buffer
	err   error
	done  chan struct{}
}

// processLines reads lines from r, applies fn to each on workers
// goroutines and writes the outputs to w in input order. fn appends its
// output line (without the newline) to the buffer. Errors name the line.
func processLines(ctx context.Context, r io.Reader, w io.Writer, workers int, fn func(line []byte, out *bytes.Buffer) error) error {
	workers = defaultWorkers(workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *lineBatch, workers)
	order := make(chan *lineBatch, 2*workers)
	var readErr error
	go func() {
		defer close(work)
		defer close(order)
		br := bufio.NewReaderSize(r, 1<<20)
		line := 0
		for {
			b := &lineBatch{first: line + 1, done: make(chan struct{})}
			size := 0
			var err error
			for len(b.lines) < 1024 && size < 1<<20 {
				var l []byte
				l, err = br.ReadBytes('\n')
				if len(l) > 0 {
					line++
					l = bytes.TrimSuffix(l, []byte("\n"))
					b.lines = append(b.lines, l)
					size += len(l)
				}
				if err != nil {
					break
				}
			}
			if len(b.lines) > 0 {
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
				for i, l := range b.lines {
					if err := fn(l, &b.out); err != nil {
						b.err = fmt.Errorf("line %d: %w", b.first+i, err)
						break
					}
					b.out.WriteByte('\n')
				}
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
			return b.err
		}
		if _, err := bw.Write(b.out.Bytes()); err != nil {
			cancel()
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if readErr != nil {
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

// EncodeJSONL reads lines {"text": "…"} from r and writes one line
// {"ids": […]} per input line to w, in input order, encoding on workers
// goroutines. Blank lines are errors (every input line gets an output
// line).
func (t *Tokenizer) EncodeJSONL(ctx context.Context, r io.Reader, w io.Writer, allowSpecial bool, workers int) error {
	return processLines(ctx, r, w, workers, func(line []byte, out *bytes.Buffer) error {
		var in struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &in); err != nil {
			return fmt.Errorf("want {\"text\": string}: %w", err)
		}
		if in.Text == nil {
			return errors.New("no \"text\" field")
		}
		ids := t.AppendEncode(nil, []byte(*in.Text), allowSpecial)
		out.WriteString(`{"ids":`)
		out.Write(appendIDs(nil, ids))
		out.WriteByte('}')
		return nil
	})
}

// ChatJSONL reads chat requests (see ParseChatRequest) from r and writes
// one line {"ids": […]} per request to w, in order; with masks also
// "target" and "format" arrays of 0/1 (see Chat).
func (t *Tokenizer) ChatJSONL(ctx context.Context, r io.Reader, w io.Writer, masks bool, workers int) error {
	return processLines(ctx, r, w, workers, func(line []byte, out *bytes.Buffer) error {
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
func (t *Tokenizer) DecodeJSONL(ctx context.Context, r io.Reader, w io.Writer, workers int) error {
	return processLines(ctx, r, w, workers, func(line []byte, out *bytes.Buffer) error {
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
