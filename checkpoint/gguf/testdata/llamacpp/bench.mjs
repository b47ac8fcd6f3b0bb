// Times greedy single-stream generation of a GGUF file in llama.cpp
// (node-llama-cpp's prebuilt CPU build, no download, no compilation) for
// checkpoint/gguf's BenchmarkGenerateVsLlamaCpp.
//
// Usage: node bench.mjs MODEL.gguf CONTEXT_SIZE
//
// It loads the model once and prints {"ready": true} on a line. Then, for
// every request line on stdin, {"prompt": [ids], "tokens": n, "threads":
// t}, it starts afresh a sequence of a context with t threads (made on
// first use, kept for the next requests with t), evaluates the prompt and takes the first token from
// its logits (untimed), then times n decoding steps, each evaluating the
// last token and picking the next one greedily, and answers with a line
// {"threads": the context's thread count, "tokens": [n+1 ids], "eog": count of end-of-generation tokens among
// them, "seconds": wall time of the n steps, "cpuSeconds": this process's
// CPU time (all threads) over them, "evalSeconds" and "evalRuns":
// llama.cpp's own decode time and count of those steps
// (llama_perf_context), without node-llama-cpp's per-token overhead (a
// hand-off to a worker thread, promises, sampling)}. End-of-generation
// tokens do not stop it: they are fed back like any other token, so every
// request decodes exactly n steps.
//
// The context has an F32 K/V cache and no flash attention, as run.mjs's,
// so both sides compute the same thing from the same F32 weights.
import readline from "node:readline";
import {getLlama} from "node-llama-cpp";

const [modelPath, contextArg] = process.argv.slice(2);
const contextSize = Number(contextArg);
if (!modelPath || !(contextSize > 0)) {
    throw new Error("usage: node bench.mjs MODEL.gguf CONTEXT_SIZE");
}
// llama.cpp prints its timings at the info level: keep the last "eval
// time" line, pass warnings and errors on to stderr.
let evalLine = null;
const logger = (level, message) => {
    if (/llama_perf_context_print:\s+eval time/.test(message)) evalLine = message;
    else if (["fatal", "error", "warn"].includes(level)) process.stderr.write(message + "\n");
};
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, logLevel: "info", logger});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const contexts = new Map(); // threads → {ctx, seq}
async function contextWith(threads) {
    if (!contexts.has(threads)) {
        const ctx = await model.createContext({
            contextSize, threads, batchSize: contextSize, sequences: 1, performanceTracking: true,
            experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false,
        });
        contexts.set(threads, {ctx, seq: ctx.getSequence()});
    }
    return contexts.get(threads);
}
process.stdout.write(JSON.stringify({ready: true}) + "\n");

for await (const line of readline.createInterface({input: process.stdin})) {
    if (line.trim() === "") continue;
    const req = JSON.parse(line);
    const {ctx, seq} = await contextWith(req.threads);
    await seq.clearHistory();
    const tokens = [];
    let start, cpu0;
    // temperature 0 is llama.cpp's greedy sampler; yieldEogToken keeps
    // the generator going through end-of-generation tokens.
    for await (const t of seq.evaluate(req.prompt, {temperature: 0, yieldEogToken: true})) {
        tokens.push(t);
        if (tokens.length === 1) {
            // The prompt is evaluated and the first token chosen: the
            // timed part, n single-token steps, starts here (printTimings
            // restarts llama.cpp's counters).
            await ctx.printTimings();
            start = process.hrtime.bigint();
            cpu0 = process.cpuUsage();
        }
        if (tokens.length > req.tokens) break;
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    evalLine = null;
    await ctx.printTimings();
    // "eval time = 2643.30 ms / 256 runs ( ..."
    const m = evalLine && evalLine.match(/eval time\s*=\s*([0-9.]+) ms\s*\/\s*([0-9]+) runs/);
    if (!m) throw new Error(`no llama.cpp eval timings in ${JSON.stringify(evalLine)}`);
    const eog = tokens.filter((t) => model.isEogToken(t)).length;
    process.stdout.write(JSON.stringify({
        threads: ctx.currentThreads, tokens, eog, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6,
        evalSeconds: Number(m[1]) / 1e3, evalRuns: Number(m[2]),
    }) + "\n");
}
for (const {ctx, seq} of contexts.values()) {
    await seq.dispose();
    await ctx.dispose();
}
await model.dispose();
await llama.dispose();
