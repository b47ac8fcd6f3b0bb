package tasks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

const (
	letters = "abcdefghijklmnopqrstuvwxyz"
	digits  = "0123456789"
	// minSample and maxSample bound the length of the lists Sample draws.
	minSample, maxSample = 3, 5
)

// maxItems is the longest list the verifiers of the list tasks (first,
// last, max, reverse, sort) accept.
const maxItems = 64

// listOp is what a list task does to its list.
type listOp int

const (
	opReverse listOp = iota
	opSort
	opFirst // the first item
	opLast  // the last item
	opMax   // the largest item
)

// list is a task on a list of single symbols: "Prefix a b c" → the list
// transformed, its items separated by single spaces.
type list struct {
	name     string
	prefix   string // "Reverse:"; a space follows it in a prompt
	alphabet string // the symbols, in ascending order
	op       listOp
	distinct bool // Sample draws distinct symbols
}

// Name returns the task's name.
func (l list) Name() string { return l.name }

// Sample draws minSample to maxSample symbols of the alphabet.
func (l list) Sample(rng *rand.Rand) (prompt, answer string) {
	k := minSample + rng.IntN(maxSample-minSample+1)
	pool := []byte(l.alphabet)
	items := make([]byte, k)
	for i := range items {
		if l.distinct {
			j := i + rng.IntN(len(pool)-i)
			pool[i], pool[j] = pool[j], pool[i]
			items[i] = pool[i]
		} else {
			items[i] = pool[rng.IntN(len(pool))]
		}
	}
	return l.prefix + " " + join(items), join(l.solve(items))
}

// Verify reports whether response is the prompt's list transformed.
func (l list) Verify(prompt, response string) (bool, error) {
	items, err := l.parse(prompt)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(response) == join(l.solve(items)), nil
}

// Wrong returns the prompt's list as it stands (when that is not the answer)
// or the answer with two adjacent different items swapped; a list of one
// repeated symbol gets one item replaced by another symbol.
func (l list) Wrong(rng *rand.Rand, prompt, answer string) string {
	items, err := l.parse(prompt)
	if err != nil {
		return differentFrom(answer)
	}
	want := l.solve(items)
	if len(want) == 1 {
		// One item: another item of the list, else another symbol.
		var others []byte
		for _, c := range items {
			if c != want[0] {
				others = append(others, c)
			}
		}
		if len(others) > 0 {
			return string(others[rng.IntN(len(others))])
		}
		k := strings.IndexByte(l.alphabet, want[0])
		j := rng.IntN(len(l.alphabet) - 1)
		if j >= k {
			j++
		}
		return string(l.alphabet[j])
	}
	var cands [][]byte
	if !slices.Equal(items, want) {
		cands = append(cands, items)
	}
	var pairs []int
	for i := 0; i+1 < len(want); i++ {
		if want[i] != want[i+1] {
			pairs = append(pairs, i)
		}
	}
	if len(pairs) > 0 {
		i := pairs[rng.IntN(len(pairs))]
		s := slices.Clone(want)
		s[i], s[i+1] = s[i+1], s[i]
		cands = append(cands, s)
	}
	if len(cands) > 0 {
		return join(cands[rng.IntN(len(cands))])
	}
	// Every item is the same symbol: no order of them is wrong.
	s := slices.Clone(want)
	i := rng.IntN(len(s))
	k := strings.IndexByte(l.alphabet, s[i])
	j := rng.IntN(len(l.alphabet) - 1)
	if j >= k {
		j++
	}
	s[i] = l.alphabet[j]
	return join(s)
}

// claims reports whether prompt starts with the task's prefix.
func (l list) claims(prompt string) bool {
	return strings.HasPrefix(strings.TrimSpace(prompt), l.prefix)
}

// solve returns items transformed, in a new slice.
func (l list) solve(items []byte) []byte {
	out := slices.Clone(items)
	switch l.op {
	case opReverse:
		slices.Reverse(out)
	case opSort:
		slices.Sort(out)
	case opFirst:
		out = out[:1]
	case opLast:
		out = out[len(out)-1:]
	case opMax:
		out = []byte{slices.Max(out)}
	}
	return out
}

// parse returns the items of prompt: the prefix, a space, then 1 to maxItems
// symbols of the alphabet separated by single spaces.
func (l list) parse(prompt string) ([]byte, error) {
	form := fmt.Sprintf("want %q and 1 to %d symbols of %q separated by single spaces", l.prefix+" ", maxItems, l.alphabet)
	rest, ok := strings.CutPrefix(strings.TrimSpace(prompt), l.prefix+" ")
	if !ok || len(rest)%2 == 0 || len(rest) > 2*maxItems-1 {
		return nil, formError(l.name, prompt, form)
	}
	items := make([]byte, 0, (len(rest)+1)/2)
	for i := range len(rest) {
		c := rest[i]
		if i%2 == 1 {
			if c != ' ' {
				return nil, formError(l.name, prompt, form)
			}
			continue
		}
		if strings.IndexByte(l.alphabet, c) < 0 {
			return nil, formError(l.name, prompt, form)
		}
		items = append(items, c)
	}
	return items, nil
}

// join writes items separated by single spaces.
func join(items []byte) string {
	var b strings.Builder
	b.Grow(2 * len(items))
	for i, c := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte(c)
	}
	return b.String()
}
