package posttrain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/data/tokenizer"
	"github.com/herdml/herd/model"
	"github.com/herdml/herd/model/kernels"
)

// ScoreOptions configure Score.
type ScoreOptions struct {
	// Tokenizer is the tokenizer directory (empty: the model directory's).
	Tokenizer string
	// SeqLen is the longest sequence scored (0: the model's
	// max_position_embeddings); longer rows are reported as errors.
	SeqLen int
	// Workers is the number of compute goroutines (0 = all cores).
	Workers int
	// MaxLineBytes bounds an input line (0: chatdata.DefaultMaxLineBytes).
	MaxLineBytes int
}

// ScoreSummary counts what Score did.
type ScoreSummary struct {
	Rows, Scored, Bad int
}

// scoreLine is one output line of Score.
type scoreLine struct {
	Line     int      `json:"line"`
	Reward   *float64 `json:"reward,omitempty"`
	Chosen   *float64 `json:"chosen,omitempty"`
	Rejected *float64 `json:"rejected,omitempty"`
	Edited   *float64 `json:"edited,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Score reads JSONL rows from in (named name in messages) and writes, per
// non-blank line, the reward the reward model in modelDir gives it: a
// preference row ({"prompt","chosen","rejected"[,"edited"]}) gets the
// reward of each response after the prompt, an SFT row ({"messages"} or
// {"prompt","completion"}) the reward of the whole conversation. The
// reward is read at the last token, as in training. A row that cannot be
// scored gets {"line", "error"} and is counted as bad.
func Score(ctx context.Context, modelDir string, in io.Reader, name string, out io.Writer, o ScoreOptions) (ScoreSummary, error) {
	var sum ScoreSummary
	cfg, params, err := checkpoint.LoadModel(modelDir)
	if err != nil {
		return sum, err
	}
	if !cfg.HasScoreHead() || cfg.NumLabels != 1 {
		return sum, fmt.Errorf("%s is not a reward model (config.json architectures must be [%s] with num_labels 1)", modelDir, model.SequenceClassifier)
	}
	tdir := o.Tokenizer
	if tdir == "" {
		tdir = modelDir
	}
	tok, err := tokenizer.Load(tdir)
	if err != nil {
		return sum, fmt.Errorf("tokenizer: %w", err)
	}
	seqLen := o.SeqLen
	if seqLen <= 0 || seqLen > cfg.MaxPositionEmbeddings {
		seqLen = cfg.MaxPositionEmbeddings
	}
	enc, err := chatdata.NewEncoder(tok, chatdata.EncodeOptions{SeqLen: seqLen})
	if err != nil {
		return sum, err
	}
	be := kernels.NewCPU(o.Workers)
	defer be.Close()
	m, err := model.NewWithParams(cfg, params, be)
	if err != nil {
		return sum, err
	}
	pad := int32(padToken(tok))
	maxLine := o.MaxLineBytes
	if maxLine <= 0 {
		maxLine = chatdata.DefaultMaxLineBytes
	}
	br := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriter(out)
	jw := json.NewEncoder(w)
	var line []byte
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		var tooLong bool
		line, tooLong, err = readLine(br, line[:0], maxLine)
		if err == io.EOF && len(line) == 0 && !tooLong {
			break
		}
		if err != nil && err != io.EOF {
			return sum, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if len(bytes.TrimSpace(line)) == 0 && !tooLong {
			continue
		}
		sum.Rows++
		res := scoreLine{Line: n}
		if tooLong {
			res.Error = fmt.Sprintf("line longer than %d bytes", maxLine)
		} else if e := scoreRow(m, enc, pad, line, &res); e != nil {
			res.Error = e.Error()
		}
		if res.Error != "" {
			sum.Bad++
		} else {
			sum.Scored++
		}
		if err := jw.Encode(&res); err != nil {
			return sum, err
		}
	}
	return sum, w.Flush()
}

// readLine reads one line (without its line ending, \n or \r\n) into
// buf; tooLong reports a line of more than limit bytes, whose rest is
// skipped.
func readLine(br *bufio.Reader, buf []byte, limit int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			// Two bytes of slack hold a line ending.
			if len(buf)+len(frag) > limit+2 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if !tooLong {
			buf = bytes.TrimSuffix(buf, []byte("\n"))
			buf = bytes.TrimSuffix(buf, []byte("\r"))
			if len(buf) > limit {
				tooLong, buf = true, buf[:0]
			}
		}
		return buf, tooLong, err
	}
}

// scoreRow scores one row's sequences in one batch, padded to the longest.
func scoreRow(m *model.Model, enc *chatdata.Encoder, pad int32, line []byte, res *scoreLine) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	var seqs [][]int32
	var dst []**float64
	if _, ok := probe["chosen"]; ok {
		row, err := chatdata.ParsePref(line)
		if err != nil {
			return err
		}
		ex, err := enc.Pref(row)
		if err != nil {
			return err
		}
		seqs = append(seqs, ex.Chosen.IDs, ex.Rejected.IDs)
		dst = append(dst, &res.Chosen, &res.Rejected)
		if ex.Edited != nil {
			seqs = append(seqs, ex.Edited.IDs)
			dst = append(dst, &res.Edited)
		}
	} else {
		row, err := chatdata.ParseSFT(line)
		if err != nil {
			return err
		}
		ex, err := enc.SFT(row)
		if err != nil {
			return err
		}
		seqs = append(seqs, ex.IDs)
		dst = append(dst, &res.Reward)
	}
	r, err := Rewards(m, seqs, pad)
	if err != nil {
		return err
	}
	for i, p := range dst {
		v := r[i]
		*p = &v
	}
	return nil
}

// Rewards scores token sequences with a reward model in one batch (each
// right-padded with pad to the longest), reading each at its last token.
func Rewards(m *model.Model, seqs [][]int32, pad int32) ([]float64, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	T := 0
	for _, s := range seqs {
		if len(s) == 0 {
			return nil, errors.New("an empty sequence has no reward")
		}
		T = max(T, len(s))
	}
	b := model.Batch{B: len(seqs), T: T, Tokens: make([]int32, len(seqs)*T)}
	last := make([]int32, len(seqs))
	for r, s := range seqs {
		row := b.Tokens[r*T : (r+1)*T]
		n := copy(row, s)
		for i := n; i < T; i++ {
			row[i] = pad
		}
		last[r] = int32(len(s) - 1)
	}
	if err := m.ForwardHidden(&b); err != nil {
		return nil, err
	}
	sc, err := m.Scores(last)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(seqs))
	for i := range out {
		out[i] = float64(sc[i])
	}
	return out, nil
}
