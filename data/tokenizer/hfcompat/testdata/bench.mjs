// Measures single-threaded encoding speed of the Llama 3 tokenizer in
// tiktoken (Rust compiled to WASM), the Rust Hugging Face tokenizers (node
// bindings) and transformers.js, for comparison with herd's
// BenchmarkEncode* on the same text.
//
//   RAYON_NUM_THREADS=1 node bench.mjs TOKENIZER_DIR TEXT_FILE...
//
// Each file is encoded whole, as one string, without special tokens.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tiktoken } from "tiktoken/lite";
import hf from "tokenizers";
import { TokenizerLoader } from "@lenml/tokenizers";

const [dir, ...files] = process.argv.slice(2);
const tj = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
const tc = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));

// tiktoken ranks from the byte-level vocabulary (Llama 3's ids are its ranks).
const byteOf = new Map();
for (let b = 0, n = 0; b < 256; b++) {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  byteOf.set(String.fromCodePoint(printable ? b : 256 + n++), b);
}
const ranks = Object.entries(tj.model.vocab)
  .map(([tok, id]) => Buffer.from([...tok].map((c) => byteOf.get(c))).toString("base64") + " " + id)
  .join("\n");
const pattern = tj.pre_tokenizer.pretokenizers[0].pattern.Regex;

const engines = {
  "tiktoken-wasm": (() => { const t = new Tiktoken(ranks, {}, pattern); return async (s) => t.encode_ordinary(s).length; })(),
  "hf-rust": (() => { const t = hf.Tokenizer.fromFile(join(dir, "tokenizer.json")); return async (s) => (await t.encode(s, null, { addSpecialTokens: false })).getIds().length; })(),
  "transformers.js": (() => { const t = TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc }); return async (s) => t.encode(s, { add_special_tokens: false }).length; })(),
};
for (const f of files) {
  const text = readFileSync(f, "utf8");
  const mb = Buffer.byteLength(text) / 1e6;
  for (const [name, enc] of Object.entries(engines)) {
    await enc(text); // warm up
    const runs = 3;
    let n = 0;
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) n = await enc(text);
    const s = (performance.now() - t0) / 1000 / runs;
    console.log(`${f}\t${name}\t${(mb / s).toFixed(2)} MB/s\t${n} ids`);
  }
}
