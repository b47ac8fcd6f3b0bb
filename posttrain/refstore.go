package posttrain

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/zeebo/xxh3"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/data/chatdata"
	"github.com/herdml/herd/internal/atomicfile"
	"github.com/herdml/herd/model"
)

// Files of the stored reference log-probabilities in a DPO run directory.
const (
	RefLogpsFile = "ref_logps.bin"  // per step: batch hash, then one float64 per row
	RefMetaFile  = "ref_logps.json" // what the .bin holds and where its computation stands
)

// refSyncEvery is how many steps of reference log-probabilities are
// computed between syncs of the store (an interrupted computation resumes
// from the last sync).
const refSyncEvery = 32

// refMeta describes ref_logps.bin.
type refMeta struct {
	Version int `json:"version"`
	// Fingerprint identifies the data, the batch shape and the reference
	// model; a store with another fingerprint is recomputed.
	Fingerprint string `json:"fingerprint"`
	Rows        int    `json:"rows"`       // rows per step
	StepsDone   int    `json:"steps_done"` // steps whose records are complete
	// State is the training loader's position after StepsDone steps.
	State chatdata.State `json:"state"`
	// Eval holds the reference log-probabilities of the held-out batches.
	Eval     [][]float64 `json:"eval,omitempty"`
	EvalDone bool        `json:"eval_done"`
}

// refStore is the reference model's log-probability of every chosen and
// rejected sequence of every training step, computed once before training
// (the reference is the starting policy, so no second model is held while
// training) and read back by step. Each step's record carries a hash of
// its batch's tokens, so a store computed for other data is detected, not
// used.
type refStore struct {
	f    *os.File
	meta refMeta
	rec  int
	buf  []byte // one record
	hbuf []byte // a batch's bytes, hashed
}

func refRecordSize(rows int) int { return 8 + 8*rows }

// batchHash identifies a batch by its shape and tokens.
func batchHash(pb *chatdata.PrefBatch, buf []byte) (uint64, []byte) {
	buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(pb.B))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(pb.T))
	for _, id := range pb.Tokens {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
	}
	return xxh3.Hash(buf), buf
}

// openRefStore opens the run's reference store, computing what is missing:
// with the policy itself on a fresh run (it is the reference before the
// first update), or with the reference model loaded from recipe.model when
// the run resumes from a checkpoint.
func openRefStore(ctx context.Context, t *dpoTrainer) (*refStore, error) {
	run := t.run
	r := &run.r
	rows := 2 * r.Train.Batch
	fp, err := t.refFingerprint()
	if err != nil {
		return nil, err
	}
	metaPath, binPath := filepath.Join(r.Out, RefMetaFile), filepath.Join(r.Out, RefLogpsFile)
	s := &refStore{rec: refRecordSize(rows)}
	data, err := os.ReadFile(metaPath)
	switch {
	case err == nil:
		if jerr := json.Unmarshal(data, &s.meta); jerr != nil {
			run.log.Warn("unreadable reference store; recomputing", "file", metaPath, "err", jerr)
			s.meta = refMeta{}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	if s.meta.Version != 1 || s.meta.Fingerprint != fp || s.meta.Rows != rows {
		if s.meta.Fingerprint != "" {
			run.log.Info("the stored reference log-probabilities were computed for other data or another model; recomputing")
		}
		s.meta = refMeta{Version: 1, Fingerprint: fp, Rows: rows}
	}
	if s.f, err = os.OpenFile(binPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	if err := s.f.Truncate(int64(s.meta.StepsDone) * int64(s.rec)); err != nil {
		s.close()
		return nil, err
	}
	if s.meta.StepsDone >= r.Train.Steps && (s.meta.EvalDone || r.Data.HeldOut == 0) {
		return s, nil
	}
	ref := run.m
	if run.e.Resumed() {
		run.log.Info("loading the reference model to compute the missing reference log-probabilities", "model", r.Model)
		cfg, params, err := checkpoint.LoadModel(r.Model)
		if err == nil {
			ref, err = model.NewWithParams(cfg, params, run.be)
		}
		if err != nil {
			s.close()
			return nil, fmt.Errorf("reference model: %w", err)
		}
	}
	if err := s.compute(ctx, t, ref, metaPath); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// readRefStore opens the complete store another rank computed, read-only.
func readRefStore(t *dpoTrainer) (*refStore, error) {
	r := &t.run.r
	rows := 2 * r.Train.Batch
	fp, err := t.refFingerprint()
	if err != nil {
		return nil, err
	}
	s := &refStore{rec: refRecordSize(rows)}
	metaPath := filepath.Join(r.Out, RefMetaFile)
	data, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, fmt.Errorf("rank 0's store (the ranks must share the run directory): %w", err)
	}
	if err := json.Unmarshal(data, &s.meta); err != nil {
		return nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	if s.meta.Fingerprint != fp || s.meta.Rows != rows || s.meta.StepsDone < r.Train.Steps {
		return nil, fmt.Errorf("%s is not the store of this run (rows %d, %d steps done of %d): do the ranks see the same run directory and data?", metaPath, s.meta.Rows, s.meta.StepsDone, r.Train.Steps)
	}
	if s.f, err = os.Open(filepath.Join(r.Out, RefLogpsFile)); err != nil {
		return nil, err
	}
	return s, nil
}

// refFingerprint identifies the training data order, the batch shape and
// the reference model (its directory and config).
func (t *dpoTrainer) refFingerprint() (string, error) {
	l, err := chatdata.NewPrefLoader(t.options(false), nil)
	if err != nil {
		return "", err
	}
	fp := l.State().Fingerprint
	l.Close()
	abs, err := filepath.Abs(t.run.r.Model)
	if err != nil {
		return "", err
	}
	cfg, err := os.ReadFile(filepath.Join(t.run.r.Model, checkpoint.ConfigFile))
	if err != nil {
		return "", err
	}
	var info []byte
	for _, name := range []string{checkpoint.WeightsFile, checkpoint.WeightsIndexFile} {
		if st, err := os.Stat(filepath.Join(t.run.r.Model, name)); err == nil {
			info = fmt.Appendf(info, "%s:%d:%d;", name, st.Size(), st.ModTime().UnixNano())
		}
	}
	h := xxh3.HashString128(fmt.Sprintf("%s|%d|%d|%s|%x|%s", fp, t.run.r.Train.Batch, t.run.r.Train.SeqLen, abs, xxh3.Hash(cfg), info))
	return fmt.Sprintf("%016x%016x", h.Hi, h.Lo), nil
}

// compute fills the store up to train.steps and the held-out batches,
// syncing every refSyncEvery steps so an interruption loses little.
func (s *refStore) compute(ctx context.Context, t *dpoTrainer, ref *model.Model, metaPath string) error {
	run := t.run
	r := &run.r
	var st *chatdata.State
	if s.meta.StepsDone > 0 {
		st = &s.meta.State
	}
	logp, count := make([]float64, s.meta.Rows), make([]float64, s.meta.Rows)
	if s.meta.StepsDone < r.Train.Steps {
		l, err := chatdata.NewPrefLoader(t.options(false), st)
		if err != nil {
			return err
		}
		defer l.Close()
		run.log.Info("computing the reference log-probabilities", "from_step", s.meta.StepsDone, "steps", r.Train.Steps)
		rec := make([]byte, 0, s.rec*refSyncEvery)
		var hbuf []byte
		for step := s.meta.StepsDone; step < r.Train.Steps; step++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			pb, err := l.Next(ctx)
			if err != nil {
				return dataErr(step, err, r)
			}
			if _, err := seqLogps(ref, pb, t.py, logp, count); err != nil {
				return fmt.Errorf("step %d: %w", step+1, err)
			}
			var h uint64
			h, hbuf = batchHash(pb, hbuf)
			rec = binary.LittleEndian.AppendUint64(rec, h)
			for _, x := range logp {
				rec = binary.LittleEndian.AppendUint64(rec, math.Float64bits(x))
			}
			if done := step + 1; done%refSyncEvery == 0 || done == r.Train.Steps {
				if _, err := s.f.WriteAt(rec, int64(s.meta.StepsDone)*int64(s.rec)); err != nil {
					return err
				}
				if err := s.f.Sync(); err != nil {
					return err
				}
				s.meta.StepsDone, s.meta.State = done, l.State()
				if err := s.writeMeta(metaPath); err != nil {
					return err
				}
				rec = rec[:0]
				run.log.Info("reference log-probabilities", "steps", done, "of", r.Train.Steps)
			}
		}
	}
	if r.Data.HeldOut > 0 && !s.meta.EvalDone {
		l, err := chatdata.NewPrefLoader(t.options(true), nil)
		if err != nil {
			return err
		}
		defer l.Close()
		s.meta.Eval = nil
		for range r.Eval.Batches {
			pb, err := l.Next(ctx)
			if isEOF(err) {
				break
			}
			if err != nil {
				return fmt.Errorf("held-out data: %w", err)
			}
			if _, err := seqLogps(ref, pb, t.py, logp, count); err != nil {
				return err
			}
			s.meta.Eval = append(s.meta.Eval, append([]float64(nil), logp[:pb.B]...))
		}
		s.meta.EvalDone = true
		if err := s.writeMeta(metaPath); err != nil {
			return err
		}
	}
	return nil
}

func (s *refStore) writeMeta(path string) error {
	data, err := json.Marshal(&s.meta)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// read puts the stored reference log-probabilities of step's batch into
// dst, after checking the batch is the one they were computed for.
func (s *refStore) read(step int, pb *chatdata.PrefBatch, dst []float64) error {
	if step >= s.meta.StepsDone {
		return fmt.Errorf("step %d: no stored reference log-probabilities (computed for %d steps)", step+1, s.meta.StepsDone)
	}
	if pb.B != s.meta.Rows {
		return fmt.Errorf("step %d: the batch has %d rows, the stored reference %d", step+1, pb.B, s.meta.Rows)
	}
	if cap(s.buf) < s.rec {
		s.buf = make([]byte, s.rec)
	}
	buf := s.buf[:s.rec]
	if _, err := s.f.ReadAt(buf, int64(step)*int64(s.rec)); err != nil {
		return fmt.Errorf("step %d: read %s: %w", step+1, RefLogpsFile, err)
	}
	var h uint64
	h, s.hbuf = batchHash(pb, s.hbuf)
	if got := binary.LittleEndian.Uint64(buf); got != h {
		return fmt.Errorf("step %d: the stored reference log-probabilities belong to another batch (the data changed since they were computed); remove %s and %s from the run directory to recompute them", step+1, RefLogpsFile, RefMetaFile)
	}
	for i := range dst[:pb.B] {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8+8*i:]))
	}
	return nil
}

func (s *refStore) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
