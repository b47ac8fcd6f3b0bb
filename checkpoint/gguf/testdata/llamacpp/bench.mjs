// Times greedy single-stream generation of a GGUF file in llama.cpp
// (node-llama-cpp's prebuilt CPU build, no download, no compilation) for
// checkpoint/gguf's BenchmarkGenerateVsLlamaCpp.
//
// Usage: node bench.mjs MODEL.gguf THREADS CONTEXT_SIZE
//
// It loads the model once and prints {"ready": true} on a line. Then, for
// every request line on stdin, {"prompt": [ids], "tokens": n}, it starts
// the sequence afresh, evaluates the prompt and takes the first token from
// its logits (untimed), then times n decoding steps, each evaluating the
// last token and picking the next one greedily, and answers with a line
// {"tokens": [n+1 ids], "eog": count of end-of-generation tokens among
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

const [modelPath, threadsArg, contextArg] = process.argv.slice(2);
const threads = Number(threadsArg), contextSize = Number(contextArg);
if (!modelPath || !(threads > 0) || !(contextSize > 0)) {
    throw new Error("usage: node bench.mjs MODEL.gguf THREADS CONTEXT_SIZE");
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
const ctx = await model.createContext({
    contextSize, threads, batchSize: contextSize, sequences: 1, performanceTracking: true,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false,
});
const seq = ctx.getSequence();
process.stdout.write(JSON.stringify({ready: true}) + "\n");

for await (const line of readline.createInterface({input: process.stdin})) {
    if (line.trim() === "") continue;
    const req = JSON.parse(line);
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
        tokens, eog, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6,
        evalSeconds: Number(m[1]) / 1e3, evalRuns: Number(m[2]),
    }) + "\n");
}
await seq.dispose();
await ctx.dispose();
await model.dispose();
await llama.dispose();
