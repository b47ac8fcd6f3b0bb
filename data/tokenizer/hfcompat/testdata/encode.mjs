// Encodes texts with a Hugging Face tokenizers implementation, for
// data/tokenizer's compatibility test.
//
//   node encode.mjs ENGINE TOKENIZER_DIR TEXTS.json OUT.json
//
// ENGINE is "rust" (the Rust tokenizers library through its node bindings,
// npm package "tokenizers") or "transformers-js" (@lenml/tokenizers, the
// transformers.js port). TEXTS.json is a JSON array of strings. OUT.json
// receives {"ids": [[…], …], "with_special": […], "decoded": […]}: the ids
// of each text encoded without special tokens added, the ids of the first
// text with them added (the post-processor's BOS), and (rust) each id list
// decoded back to text.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [engine, dir, textsPath, outPath] = process.argv.slice(2);
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const out = {};
if (engine === "rust") {
  const { Tokenizer } = (await import("tokenizers")).default;
  const tok = Tokenizer.fromFile(join(dir, "tokenizer.json"));
  const encs = await tok.encodeBatch(texts, { addSpecialTokens: false });
  out.ids = encs.map((e) => e.getIds());
  out.with_special = (await tok.encode(texts[0], null, { addSpecialTokens: true })).getIds();
  out.decoded = await tok.decodeBatch(out.ids, false);
} else if (engine === "transformers-js") {
  const { TokenizerLoader } = await import("@lenml/tokenizers");
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
  });
  out.ids = texts.map((t) => Array.from(tok.encode(t, { add_special_tokens: false })));
  out.with_special = Array.from(tok.encode(texts[0], { add_special_tokens: true }));
} else {
  console.error(`unknown engine ${engine}: want rust or transformers-js`);
  process.exit(2);
}
writeFileSync(outPath, JSON.stringify(out));
