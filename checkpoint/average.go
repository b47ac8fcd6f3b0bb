package checkpoint

import (
	"errors"
	"fmt"

	"github.com/herdml/herd/model"
)

// Average returns the element-wise mean of the weights of the model
// directories dirs (Polyak averaging), with the configuration of the last
// one. Every directory must hold the same tensor layout.
func Average(dirs []string) (model.Config, *model.Params, error) {
	if len(dirs) == 0 {
		return model.Config{}, nil, errors.New("average: no checkpoints")
	}
	var cfg model.Config
	var avg *model.Params
	for k, dir := range dirs {
		c, p, err := LoadModel(dir)
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
