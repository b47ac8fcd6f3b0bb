// Runs a GGUF file in llama.cpp (node-llama-cpp's prebuilt CPU build, no
// download, no compilation) for checkpoint/gguf's compatibility test.
//
// Usage: node run.mjs REQUEST.json > RESPONSE.json
//
// REQUEST: {"model": path, "threads": n, "contextSize": n, "vocab": n,
//           "cases": [{"text": string|null, "ids": [int], "generate": n}]}
// RESPONSE: {"cases": [{"tokens": [int] (llama.cpp's tokenization of text,
//            no BOS, special tokens not parsed), "probs": [[float] per input
//            position: the next-token distribution over the whole
//            vocabulary], "greedy": [int] (up to `generate` tokens continued
//            greedily from ids, the end-of-generation token included)}]}
//
// The context uses an F32 K/V cache and no flash attention so that the
// comparison is not blurred by llama.cpp's default F16 cache.
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";

const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, logLevel: "error"});
const model = await llama.loadModel({modelPath: req.model, gpuLayers: 0});
const out = {cases: []};
for (const c of req.cases) {
    const res = {};
    if (c.text != null) {
        res.tokens = Array.from(model.tokenize(c.text, false));
    }
    const ctx = await model.createContext({
        contextSize: req.contextSize, threads: req.threads, batchSize: req.contextSize,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false,
    });
    let seq = ctx.getSequence();
    const evals = await seq.controlledEvaluate(c.ids.map((t) => [t, {generateNext: {probabilities: true}}]));
    const V = req.vocab;
    res.probs = evals.map((e, i) => {
        if (!e || !e.next || !e.next.probabilities) {
            throw new Error(`no probabilities at position ${i}`);
        }
        const m = e.next.probabilities;
        const n = V;
        const row = new Array(n).fill(0);
        for (const [tok, p] of m) row[tok] = p;
        return row;
    });
    await seq.clearHistory();
    res.greedy = [];
    if (c.generate > 0) {
        for await (const t of seq.evaluate(c.ids, {temperature: 0, yieldEogToken: true})) {
            res.greedy.push(t);
            if (res.greedy.length >= c.generate || model.isEogToken(t)) break;
        }
    }
    await seq.dispose();
    await ctx.dispose();
    out.cases.push(res);
}
process.stdout.write(JSON.stringify(out));
await model.dispose();
await llama.dispose();
