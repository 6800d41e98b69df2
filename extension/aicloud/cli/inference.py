"""``aicloud serve``, ``aicloud predict`` and ``aicloud infer``: models from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

COMMANDS = ("serve", "predict", "infer")


def _shape(text: str) -> list[int]:
    try:
        return [int(d) for d in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes like 4 or 3,32,32, got {text!r}"
        ) from None


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="the saved model, relative to --cwd")
    parser.add_argument("--name", help="job name; for serve also the model's name")
    parser.add_argument("--framework", choices=["torch", "tensorflow", "none"], default="none")
    parser.add_argument(
        "--format",
        choices=["torchscript", "torch_export", "state_dict", "savedmodel", "keras"],
        help="how the model was saved (default: from its name, else torchscript)",
    )
    parser.add_argument("--model-class", help="state_dict models: module.path:ClassName")
    parser.add_argument(
        "--model-kwargs", type=json.loads, help="state_dict models: the class's arguments (JSON)"
    )
    parser.add_argument("--input-shape", type=_shape, help="one row's shape, e.g. 4 or 3,32,32")
    parser.add_argument("--datatype", help="input datatype (default FP32)")
    parser.add_argument("--cwd", help="working directory, relative to the server's root")
    parser.add_argument("--max-retries", type=int)
    parser.add_argument("--json", action="store_true")


def add_parsers(commands) -> None:
    """Register ``serve``, ``predict`` and ``infer``."""
    serve = commands.add_parser(
        "serve",
        help="serve a model over the Open Inference Protocol (v2)",
        description="Start a serve job: a v2 REST endpoint for MODEL. Waits until the model "
        "is loaded and prints its URL; stop it with `aicloud cancel JOB`.",
    )
    _model_flags(serve)
    serve.add_argument("--max-batch-size", type=int, help="dynamic batching; 1 turns it off")
    serve.add_argument("--max-wait-ms", type=float, help="longest wait to fill a batch")
    serve.add_argument("--port", type=int, help="fixed port (default: a free one)")
    serve.add_argument("--grpc-port", type=int, help="also serve v2 gRPC (0: a free port)")
    serve.add_argument("--max-queue", type=int, help="waiting requests before 503s")
    serve.add_argument("--workers", type=int, help="server processes on the port")
    serve.add_argument("--threads", type=int, help="the model's threads in each process")
    serve.add_argument(
        "--model-thread", action="store_true", default=None, help="run the model in a thread"
    )
    serve.add_argument("--no-wait", action="store_true", help="print the job id and return")
    serve.add_argument("--timeout", type=float, default=300, help="seconds to wait for ready")

    predict = commands.add_parser(
        "predict",
        help="call a served model",
        description="Send DATA to a served model and print its predictions. TARGET is a "
        "serve job's name or id, or a URL ending in /v2/models/NAME. DATA is a .npy, "
        ".parquet, .csv or .jsonl file, or a JSON list of rows.",
    )
    predict.add_argument("target", metavar="TARGET")
    predict.add_argument("data", metavar="DATA")
    predict.add_argument("--output", "-o", help="save the predictions as .npy instead")
    predict.add_argument("--json", action="store_true", help="print the predictions as JSON")

    infer = commands.add_parser(
        "infer",
        help="score data files with a model in a batch job",
        description="Start a batch inference job: MODEL over the --data files, sharded "
        "across --procs workers. A retried job skips the shards already done.",
    )
    _model_flags(infer)
    infer.add_argument(
        "--data", action="append", required=True, metavar="FILE_OR_GLOB", help="repeatable"
    )
    infer.add_argument("--procs", type=int, default=1, help="worker processes")
    infer.add_argument("--batch-size", type=int, help="rows per model call")
    infer.add_argument("--shard-rows", type=int, help="rows per shard")
    infer.add_argument("--output-dir", help="where predictions.npy goes (default: outputs)")
    infer.add_argument("--wait", action="store_true", help="wait; exit with the job's outcome")


def _options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in names}


def _job_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = {k: getattr(args, k) for k in ("cwd", "max_retries") if getattr(args, k) is not None}
    return fields


def _rows(text: str):
    import numpy as np

    from aicloud.inference.api import as_array

    if text.lstrip().startswith("["):
        try:
            return as_array(json.loads(text))
        except ValueError as e:
            raise ValueError(f"data: not a JSON list of rows: {e}") from None
    return np.asarray(as_array(text))


def run_command(args: argparse.Namespace, client) -> int:
    """Carry out ``serve``, ``predict`` or ``infer``; one clear line on failure."""
    from aicloud.client import APIError
    from aicloud.inference.v2client import V2Error

    try:
        return execute(args, client)
    except APIError:
        raise  # the CLI's main prints it with its HTTP status
    except (ValueError, LookupError, RuntimeError) as e:
        message = e.message if isinstance(e, V2Error) else str(e)
        print(f"aicloud: error: {message}", file=sys.stderr)
        return 1


def execute(args: argparse.Namespace, client) -> int:
    """``serve``, ``predict`` or ``infer``; errors raise (the CLI and the magics show them)."""
    from aicloud.inference import api

    common = ("format", "model_class", "model_kwargs", "input_shape", "datatype")
    if args.command == "serve":
        serving = ("max_batch_size", "max_wait_ms", "port", "grpc_port", "max_queue")
        serving += ("workers", "threads", "model_thread")
        options = _options(args, (*common, *serving))
        result = api.serve(
            args.model,
            args.name,
            framework=args.framework,
            wait=not args.no_wait,
            timeout=args.timeout,
            client=client,
            job=_job_fields(args),
            **options,
        )
        if isinstance(result, dict):
            print(json.dumps(result, indent=2) if args.json else result["id"])
            return 0
        document = {"job_id": result.job_id, "model": result.model, "url": result.url}
        model_url = f"{result.url}/v2/models/{result.model}"
        text = f"{result.job_id} serving {result.model!r} at {model_url}"
        print(json.dumps(document, indent=2) if args.json else text)
        return 0
    if args.command == "predict":
        output = api.predict(args.target, _rows(args.data), client=client)
        if args.output:
            import numpy as np

            np.save(args.output, output)
            print(f"{args.output}: {list(output.shape)} {output.dtype}")
        else:
            print(json.dumps(output.tolist()) if args.json else output)
        return 0
    options = _options(args, (*common, "batch_size", "shard_rows", "output_dir"))
    job = api.infer(
        args.model,
        args.data,
        procs=args.procs,
        name=args.name,
        framework=args.framework,
        wait=args.wait,
        client=client,
        job=_job_fields(args),
        **options,
    )
    print(json.dumps(job, indent=2) if args.json else job["id"])
    if args.wait and job["status"] != "succeeded":
        print(f"aicloud: job {job['id']} {job['status']}: {job['reason']}", file=sys.stderr)
        return 1
    return 0
