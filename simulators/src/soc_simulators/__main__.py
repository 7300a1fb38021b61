"""Run one vendor simulator: ``python -m soc_simulators qradar --port 9101 --live``."""

from __future__ import annotations

import argparse
import importlib

import uvicorn

VENDORS = {"qradar": 9101, "xsoar": 9102, "sdp": 9103, "cyware": 9104}


def main() -> None:
    parser = argparse.ArgumentParser(prog="soc_simulators")
    parser.add_argument("vendor", choices=sorted(VENDORS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--live", action="store_true", help="keep producing and changing records")
    parser.add_argument(
        "--profile",
        choices=("default", "demo"),
        default="default",
        help="xsoar, qradar, sdp: the seeded history's pace (demo: a well-staffed SOC, months of history)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=0,
        help="qradar: serve this many independent consoles under /i/<n>/ (many integrations)",
    )
    parser.add_argument("--offenses", type=int, default=None, help="qradar: seeded offenses per console")
    args = parser.parse_args()
    module = importlib.import_module(f"soc_simulators.{args.vendor}")
    if args.vendor == "qradar" and args.instances:
        fleet = module.create_fleet_app(args.instances, seed=args.seed, offenses=args.offenses or 20)
        uvicorn.run(fleet, host=args.host, port=args.port or VENDORS[args.vendor], log_level="warning")
        return
    extra = {"profile": args.profile} if args.vendor in ("xsoar", "qradar", "sdp") else {}
    app = module.create_app(seed=args.seed, live=args.live, **extra)
    uvicorn.run(app, host=args.host, port=args.port or VENDORS[args.vendor], log_level="warning")


if __name__ == "__main__":
    main()
