// Package chatdata is the post-training data layer: it streams SFT and
// preference rows from JSONL (plain, .gz, .zst) and Parquet files,
// tokenizes them with herd's Llama 3.1 chat renderer and its masks, and
// serves shuffled, resumable batches for SFT, DPO and reward-model
// training.
//
// # Rows
//
// SFT rows are {"messages": [...]} (roles system, user, assistant,
// ipython or tool; tool calls as tokenizer.Message reads them) or TRL's
// {"prompt": ..., "completion": ...}, each a string (a user and an
// assistant message) or a list of messages. Preference rows are TRL's
// {"prompt", "chosen", "rejected"} with strings (standard format) or
// lists of messages (conversational format: the prompt's messages, then
// each response's), and optionally "edited" (Llama 3's edited > chosen >
// rejected). A row may carry "tools", a list of JSON schemas (TRL's tools
// column), which replaces EncodeOptions.Chat.Tools for that row. Parquet
// files carry the same columns as strings: "messages" and "tools" hold
// JSON lists, and a prompt, completion or response
// value that is a JSON array of objects is read as a list of messages
// (any other value is plain text).
//
// Files are read one record at a time; a line or value longer than
// Options.MaxLineBytes is a bad row, never a large allocation.
//
// # Examples
//
// An SFT example is the ids of the rendered conversation and a loss
// weight per position: position i predicts token i+1, and its weight is 1
// when token i+1 is an assistant token (tokenizer.Chat.Target: an
// assistant message's body and its end token), or every token with
// EncodeOptions.AllTokens. A preference example is the shared prompt ids
// and, per response, the whole sequence, the response tokens DPO scores
// (Chat.Target and not Chat.Format, after the prompt: headers, role
// names, <|eot_id|> and <|eom_id|> are excluded, <|python_tag|> is
// scored) and the index of the last token, where a reward model reads the
// reward.
//
// # Bad rows
//
// A row that cannot become an example is counted in Stats under its
// reason (the Reason* constants) with its file:line (JSONL) or file:rowN
// (Parquet) kept for the first few; Options.Strict makes the first one an
// error instead. Examples longer than the sequence length are dropped
// (TruncateDrop) or have their prompt cut from the left (TruncateLeft).
//
// # Order and resumption
//
// Files are read in a seeded order per epoch; examples are shuffled in
// windows of Options.Shuffle examples, each served in a permutation
// seeded by (seed, window number), so memory is bounded and the order is
// a pure function of the inputs and options. A loader's State (the read
// position at the current window's start, the window number and the
// examples served) restores the exact continuation after a kill.
//
// # Batches
//
// SFTLoader fills model.Batch rows with one example each (padded), or
// packs several examples per row with document ids so no example attends
// to another and positions restart; examples are never split.
// PrefLoader puts the chosen and rejected rows of an example side by side
// (rows 2k and 2k+1; with Ranked, three rows with edited), with the scored
// tokens as Weights and the last non-padding index of every row.
package chatdata
