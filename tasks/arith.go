package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

const (
	// arithPrefix starts every arithmetic prompt: "What is 37 + 58?".
	arithPrefix = "What is "
	// maxOperand bounds the operands Sample draws (exclusive).
	maxOperand = 100
	// maxDigits bounds the operands a verifier accepts, so that every
	// result fits an int.
	maxDigits = 9
	// maxOff is the largest amount a wrong arithmetic answer is off by.
	maxOff = 10
)

// arith is a two-operand arithmetic task: "What is A op B?" → the result in
// decimal.
type arith struct {
	name string
	op   byte // '+' or '-'
}

// Name returns the task's name.
func (a arith) Name() string { return a.name }

// Sample draws two operands in [0, maxOperand), the first not smaller for a
// subtraction.
func (a arith) Sample(rng *rand.Rand) (prompt, answer string) {
	x, y := rng.IntN(maxOperand), rng.IntN(maxOperand)
	if a.op == '-' && x < y {
		x, y = y, x
	}
	return fmt.Sprintf("%s%d %c %d?", arithPrefix, x, a.op, y), strconv.Itoa(a.eval(x, y))
}

// Verify reports whether response is the prompt's result.
func (a arith) Verify(prompt, response string) (bool, error) {
	want, err := a.solve(prompt)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(response) == strconv.Itoa(want), nil
}

// Wrong returns the result with its last two digits swapped, or off by 1 to
// maxOff (not below zero when the result is not).
func (a arith) Wrong(rng *rand.Rand, prompt, answer string) string {
	want, err := a.solve(prompt)
	if err != nil {
		return differentFrom(answer)
	}
	if s, ok := swapLastDigits(want); ok && rng.IntN(2) == 0 {
		return s
	}
	d := 1 + rng.IntN(maxOff)
	w := want + d
	if rng.IntN(2) == 0 {
		w = want - d
	}
	if want >= 0 && w < 0 {
		w = want + d
	}
	return strconv.Itoa(w)
}

// claims reports whether prompt reads "What is … op …".
func (a arith) claims(prompt string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(prompt), arithPrefix)
	return ok && strings.Contains(rest, " "+string(a.op)+" ")
}

// eval applies the task's operation.
func (a arith) eval(x, y int) int {
	if a.op == '+' {
		return x + y
	}
	return x - y
}

// solve parses prompt and returns its result.
func (a arith) solve(prompt string) (int, error) {
	form := fmt.Sprintf("want %q", arithPrefix+"A "+string(a.op)+" B?")
	rest, ok := strings.CutPrefix(strings.TrimSpace(prompt), arithPrefix)
	if !ok {
		return 0, formError(a.name, prompt, form)
	}
	rest, ok = strings.CutSuffix(rest, "?")
	if !ok {
		return 0, formError(a.name, prompt, form)
	}
	xs, ys, ok := strings.Cut(rest, " "+string(a.op)+" ")
	if !ok {
		return 0, formError(a.name, prompt, form)
	}
	x, ok := parseNat(xs)
	if !ok {
		return 0, formError(a.name, prompt, fmt.Sprintf("operand %q is not a decimal of 1 to %d digits without leading zeros", clip(xs), maxDigits))
	}
	y, ok := parseNat(ys)
	if !ok {
		return 0, formError(a.name, prompt, fmt.Sprintf("operand %q is not a decimal of 1 to %d digits without leading zeros", clip(ys), maxDigits))
	}
	return a.eval(x, y), nil
}

// parseNat parses a canonical non-negative decimal of at most maxDigits
// digits (no sign, no leading zeros).
func parseNat(s string) (int, bool) {
	if len(s) == 0 || len(s) > maxDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// swapLastDigits returns n with its last two digits swapped, when they differ
// and the swap leaves no leading zero.
func swapLastDigits(n int) (string, bool) {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := []byte(strconv.Itoa(n))
	i := len(s) - 2
	if i < 0 || s[i] == s[i+1] || (i == 0 && s[1] == '0') {
		return "", false
	}
	s[i], s[i+1] = s[i+1], s[i]
	return sign + string(s), true
}

// differentFrom is Wrong's answer to a prompt that is not the task's: a text
// other than answer.
func differentFrom(answer string) string {
	if strings.TrimSpace(answer) == "0" {
		return "1"
	}
	return "0"
}
