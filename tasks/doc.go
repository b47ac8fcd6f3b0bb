// Package tasks holds herd's built-in verifiable tasks: small problems that a
// tiny Llama model (hidden size 128, 4 layers, a 768–2048-token BPE vocabulary
// trained on Go source) can learn in minutes of SFT or DPO on a laptop's CPU,
// and whose answers a program checks exactly. They feed post-training
// (supervised rows and preference rows in the TRL JSONL formats that
// data/chatdata reads) and rejection sampling with verifiers.
//
// # Tasks
//
// Each family draws short prompts with one correct answer of a handful of
// tokens:
//
//	add      What is 37 + 58?   → 95        two operands in 0–99
//	sub      What is 82 - 17?   → 65        two operands in 0–99, the first not smaller
//	reverse  Reverse: k q a m   → m a q k   3–5 distinct lowercase letters
//	sort     Sort: 7 2 9 4      → 2 4 7 9   3–5 digits (repeats allowed), ascending
//
// A prompt's form names its task, so [Verify] needs no task name. Verifiers
// accept any prompt of the same form, not only the sizes Sample draws:
// operands are canonical non-negative decimals of at most 9 digits (a
// subtraction may then have a negative answer), and lists hold 1 to
// maxItems single symbols separated by single spaces. Leading and trailing
// white space around a prompt or a response is ignored; anything else must
// match the answer exactly (no leading zeros, no plus sign, single spaces).
//
// # Wrong answers
//
// Task.Wrong gives the rejected response of a preference pair: an answer off
// by a small nonzero amount or with its last two digits swapped, and for lists
// the prompt's order or the answer with two adjacent different items swapped
// (a list of one repeated item gets one item replaced). It is never a correct
// answer.
//
// # Rows
//
// [WriteSFT] writes {"prompt", "completion"} rows and [WritePref] writes
// {"prompt", "chosen", "rejected"} rows, one JSON object a line, taking the
// tasks round-robin. Both are a pure function of their arguments; for the same
// seed, WritePref's prompts and chosen answers are WriteSFT's prompts and
// completions.
package tasks
