"""Renders chat requests with the chat template of a tokenizer_config.json,
the way transformers' apply_chat_template does (Jinja2, trim_blocks and
lstrip_blocks, a tojson that is json.dumps with ensure_ascii=False,
raise_exception), for data/tokenizer/hfcompat's TestChatMatchesJinja2.

    python3 render_jinja.py TOKENIZER_CONFIG.json < requests.jsonl > out.jsonl

Each input line is {"messages": [...], "add_generation_prompt": bool,
"template_kwargs": {...}}; each output line is {"text": ...} or
{"error": ...}.
"""
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    config = json.load(open(sys.argv[1], encoding="utf-8"))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(config["chat_template"])
    for line in sys.stdin:
        req = json.loads(line)
        try:
            text = template.render(
                messages=req["messages"],
                add_generation_prompt=req.get("add_generation_prompt", False),
                bos_token=config["bos_token"],
                eos_token=config["eos_token"],
                **req.get("template_kwargs", {}),
            )
            out = {"text": text}
        except Exception as e:  # the template's own errors and Python type errors
            out = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


main()
