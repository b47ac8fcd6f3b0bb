package pretrain

import (
	"fmt"
	"strings"

	"github.com/herdml/herd/recipes"
)

// resumeSafe lists the recipe keys whose change does not alter the run
// that was interrupted: where output goes, how often it is checkpointed,
// logged and evaluated, how many workers compute (the data order does not
// depend on them), and the tokenizer's location (its content is checked
// against the token shards separately). Lengths of stages (train.steps,
// stages[i].steps) may change too, as long as the checkpoint stays in the
// stage it was in (checkStagesForResume).
var resumeSafe = []string{"out", "workers", "tokenizer", "train.log_every", "train.max_bad_steps",
	"checkpoint.every", "checkpoint.keep", "eval.", "average.", "train.peak_gflop_per_s"}

func isResumeSafe(key string) bool {
	if key == "train.steps" || strings.HasPrefix(key, "stages[") && strings.HasSuffix(key, "].steps") {
		return true // checked against the stage plan
	}
	for _, k := range resumeSafe {
		if key == k || strings.HasSuffix(k, ".") && strings.HasPrefix(key, k) {
			return true
		}
	}
	return false
}

// checkResume decides whether a run of recipe cur may continue a
// checkpoint at step written by recipe old: every changed key must be
// resume-safe, and the checkpoint's step must fall in the same stage, with
// the same start and the same earlier stages, under both recipes (else the
// run would re-enter a finished stage with a fresh schedule). With force
// the changes are only reported. It returns the changes.
func checkResume(old, cur Recipe, step int, force bool) ([]recipes.Change, error) {
	changes := recipes.Diff(old, cur)
	var unsafe []string
	for _, c := range changes {
		if !isResumeSafe(c.Key) {
			unsafe = append(unsafe, "  "+c.String())
		}
	}
	planErr := checkStagesForResume(old.Plan(), cur.Plan(), step)
	if force || len(unsafe) == 0 && planErr == nil {
		return changes, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the recipe differs from the checkpoint's (step %d) in ways that change the run being resumed:", step)
	if len(unsafe) > 0 {
		b.WriteString("\n" + strings.Join(unsafe, "\n"))
	}
	if planErr != nil {
		b.WriteString("\n  " + planErr.Error())
	}
	fmt.Fprintf(&b, "\nresume with the recipe the run was started with (its recipe.yaml), change only %s or stage lengths that keep step %d in its stage, start a new run directory, or pass -force to continue anyway", strings.ReplaceAll(strings.Join(resumeSafe, ", "), ".,", ".*,"), step)
	return changes, fmt.Errorf("%s", b.String())
}

// checkStagesForResume: the stage the run was in at step (the last stage
// for a finished run, which may then be extended) must be the stage the new
// plan puts step in, with the same name and start, after identical stages.
func checkStagesForResume(old, cur []StagePlan, step int) error {
	so := min(stageAt(old, step), len(old)-1)
	sc := stageAt(cur, step)
	if sc >= len(cur) {
		sc = len(cur) - 1
		if step > cur[sc].End {
			return fmt.Errorf("the new recipe ends at step %d, before the checkpoint's step %d", cur[sc].End, step)
		}
	}
	if so != sc || old[so].Name != cur[sc].Name || old[so].Start != cur[sc].Start {
		return fmt.Errorf("the checkpoint at step %d is in stage %s (steps %d-%d) of its recipe, but the new recipe puts step %d in stage %s (steps %d-%d): that would re-enter a stage with a fresh schedule",
			step, old[so].Name, old[so].Start, old[so].End, step, cur[sc].Name, cur[sc].Start, cur[sc].End)
	}
	for i := range so {
		if old[i].Start != cur[i].Start || old[i].End != cur[i].End || old[i].Name != cur[i].Name {
			return fmt.Errorf("stage %s changed from steps %d-%d to %s %d-%d, before the checkpoint's step %d", old[i].Name, old[i].Start, old[i].End, cur[i].Name, cur[i].Start, cur[i].End, step)
		}
	}
	return nil
}
