"""Run llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`), with
one change: models load without ggml's "extra buffer types".

Why: a llama-cpp-python built from source with native CPU flags on a machine that reports
AMX uses ggml's AMX matrix-multiply path, which crashes (SIGSEGV in
`ggml_backend_amx_mul_mat`) on the virtual machines CI runs on. Turning off
`use_extra_bufts` (llama.cpp's `--no-extra-bufts`, which the Python server does not
expose) keeps the model on the plain CPU path; for a 270M model the speed is the same.
Everything else is the stock server: same arguments, same routes, same wire format.
"""

from __future__ import annotations

import sys

import llama_cpp
import llama_cpp.llama


def _without_extra_buffer_types() -> None:
    default_params = llama_cpp.llama_model_default_params

    def params():  # type: ignore[no-untyped-def]
        p = default_params()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama.llama_cpp.llama_model_default_params = params  # type: ignore[attr-defined]


if __name__ == "__main__":
    _without_extra_buffer_types()
    from llama_cpp.server.__main__ import main

    sys.exit(main())
