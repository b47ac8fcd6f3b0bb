package pretrain

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/herdml/herd/checkpoint"
	"github.com/herdml/herd/model"
)

// AverageCheckpoints returns the element-wise mean of the weights in dirs
// (Polyak averaging), with the configuration of the last one. Every
// checkpoint must have the same tensor layout.
func AverageCheckpoints(dirs []string) (model.Config, *model.Params, error) {
	if len(dirs) == 0 {
		return model.Config{}, nil, errors.New("average: no checkpoints")
	}
	var cfg model.Config
	var avg *model.Params
	for k, dir := range dirs {
		c, p, err := checkpoint.LoadModel(dir)
		if err != nil {
			return model.Config{}, nil, fmt.Errorf("average: %w", err)
		}
		if avg == nil {
			avg = p
			cfg = c
			continue
		}
		if len(p.Data) != len(avg.Data) || len(p.Layout.Tensors) != len(avg.Layout.Tensors) {
			return model.Config{}, nil, fmt.Errorf("average: %s has a different model than %s", dir, dirs[0])
		}
		// Running mean: avg += (x − avg)/(k+1).
		inv := 1 / float32(k+1)
		for i, x := range p.Data {
			avg.Data[i] += (x - avg.Data[i]) * inv
		}
		cfg = c
	}
	return cfg, avg, nil
}

// average writes final/: the mean of the newest average.last checkpoints,
// or the current weights when averaging is off. It returns how many
// checkpoints were averaged (1 for the current weights).
func (run *runner) average(final string) (int, error) {
	opts := checkpoint.SaveOptions{Extra: run.extraFiles()}
	k := run.r.Average.Last
	if k >= 2 {
		all, err := checkpoint.List(filepath.Join(run.r.Out, CheckpointsDir))
		if err != nil {
			return 0, err
		}
		if len(all) >= 2 {
			all = all[max(0, len(all)-k):]
			dirs := make([]string, len(all))
			for i, e := range all {
				dirs[i] = e.Dir
			}
			_, params, err := AverageCheckpoints(dirs)
			if err != nil {
				return 0, err
			}
			if err := checkpoint.SaveModel(final, run.m.Config, params, opts); err != nil {
				return 0, err
			}
			run.log.Info("averaged checkpoints", "steps", fmt.Sprint(stepsOf(all)), "into", final)
			return len(all), nil
		}
	}
	return 1, checkpoint.SaveModel(final, run.m.Config, run.m.Params, opts)
}

func stepsOf(es []checkpoint.Entry) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = e.Step
	}
	return out
}
