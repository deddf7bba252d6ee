"""Draw a character in the browser and see what a trained model thinks.

    python -m emnist_dist.demo --model runs/x/model [--port 7860] [--host 127.0.0.1] [--share]
    python -m emnist_dist.demo --model runs/x/model --export-space space/     # a Hugging Face Space folder

Needs the ``demo`` extra (``pip install -e ".[demo]"``). Serves on loopback unless told
otherwise; a public gradio.live link only with ``--share``.
"""

from __future__ import annotations

import os

from .cli import CliParser, run_cli
from .errors import UserError


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.demo",
                       description="Web demo: draw or upload one character and see the model's top 5, "
                                   "or a line of handwriting and see the text read.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (default 127.0.0.1, loopback only).")
    parser.add_argument("--port", type=int, help="Port (default: Gradio's, 7860 or the next free one).")
    parser.add_argument("--share", action="store_true", help="Also open a public gradio.live link.")
    parser.add_argument("--cpu", action="store_true", help="Use the CPU even when a GPU is available.")
    parser.add_argument("--export-space", metavar="DIR",
                        help="Instead of serving, write a Hugging Face Space folder running this demo into DIR.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # No usage statistics sent to Gradio's servers unless the user turns them on.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from .demo_app import app as demo_app
    except ModuleNotFoundError as err:
        if err.name != "gradio":
            raise
        raise UserError("the demo needs Gradio; install the demo extra: pip install -e \".[demo]\"") from None
    from .model_folder.artifact import load_model
    from .model_folder.predictor import choose_device

    if args.export_space:
        print(demo_app.export_space(args.model, args.export_space))
        return 0
    device = choose_device(args.cpu)
    model, info = load_model(args.model, device)
    app = demo_app.build_app(model, info, device)
    try:
        app.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=demo_app.MAX_UPLOAD)
    except OSError as err:  # Gradio's "cannot find empty port", an address not on this machine ...
        raise UserError(f"--host {args.host} --port {args.port}: cannot serve there ({err})") from None
    return 0


def cli() -> None:
    """Console script entry point (``emnist-demo``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
