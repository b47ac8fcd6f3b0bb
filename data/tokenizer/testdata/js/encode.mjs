// Encodes texts with @lenml/tokenizers (the transformers.js port of Hugging
// Face tokenizers) for data/tokenizer's compatibility test.
//
//   node encode.mjs TOKENIZER_DIR TEXTS.json OUT.json
//
// TEXTS.json is a JSON array of strings; OUT.json receives a JSON array of
// id arrays, encoded with add_special_tokens: false.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";

const [dir, textsPath, outPath] = process.argv.slice(2);
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
});
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const out = texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: false })));
writeFileSync(outPath, JSON.stringify(out));
