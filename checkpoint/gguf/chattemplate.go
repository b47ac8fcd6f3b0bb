package gguf

// chatTemplate is the tokenizer.chat_template herd writes for a tokenizer
// that carries none: the Llama 3.1 chat format herd's tokenizer renders
// (RenderChat) for chats without tools, as a Jinja template in the style
// of Meta's (system header with the knowledge and today dates, contents
// trimmed, an optional generation prompt). llama.cpp recognises it as its
// built-in "llama3" format; Jinja renderers (LM Studio, node-llama-cpp)
// render it as written. Load drops it again, so a herd tokenizer
// round-trips unchanged.
const chatTemplate = `{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`
