"""``python -m si.eval box-trapped JOB`` / ``schelling COOP_JOB DEFECT_JOB`` / ``video JOB --out F.gif`` /
``moa-probe JOB``."""

from __future__ import annotations

import argparse
import sys

import torch

from si.eval import EVAL_SEED, box_trapped, moa_probe, schelling, video


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m si.eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    box = sub.add_parser("box-trapped", help="Figs 12–13: write <job>/eval/box_trapped.csv")
    box.add_argument("job_dir")
    box.add_argument("--episodes", type=int, default=100, help="evaluated episodes, one env each (paper: 100)")
    sch = sub.add_parser("schelling", help="Fig 10: write <coop_job>/eval/schelling.csv")
    sch.add_argument("coop_job_dir", help="run supplying the cooperating policies (e.g. collective or influence)")
    sch.add_argument("defect_job_dir", help="run supplying the defecting policies (e.g. extrinsic = A3C)")
    sch.add_argument("--episodes", type=int, default=16, help="episodes per (cooperators, role) configuration")
    sch.add_argument("--focal", type=int, default=0, help="agent slot of the focal agent")
    vid = sub.add_parser("video", help="GIF of the trained agents playing one env")
    vid.add_argument("job_dir")
    vid.add_argument("--out", required=True, help="output path (.gif; an .mp4 too with imageio-ffmpeg)")
    vid.add_argument("--steps", type=int, default=200, help="env steps to record")
    vid.add_argument("--scale", type=int, default=8, help="pixels per map cell")
    mp = sub.add_parser("moa-probe", help="what a trained MOA responds to: write <job>/eval/moa_probe.json")
    mp.add_argument("job_dir")
    mp.add_argument("--episodes", type=int, default=16, help="envs stepped side by side")
    mp.add_argument("--steps", type=int, default=1000, help="env steps of each env")
    for p in (box, sch, vid, mp):
        p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
        p.add_argument("--seed", type=int, default=EVAL_SEED, help="evaluation seed (env layouts, action sampling)")
        p.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        if args.command == "box-trapped":
            frame = box_trapped.evaluate(args.job_dir, args.episodes, args.device, args.seed)
            print(f"box opened in {box_trapped.opened_fraction(frame):.1%} of {args.episodes} episodes "
                  f"({args.job_dir}/eval/box_trapped.csv)")
        elif args.command == "moa-probe":
            result = moa_probe.probe(args.job_dir, args.episodes, args.steps, args.device, args.seed)
            print("\n".join(f"{k}: {v:.4g}" for k, v in result.items()))
            print(f"wrote {args.job_dir}/eval/moa_probe.json")
        elif args.command == "video":
            files = video.record(args.job_dir, args.out, args.steps, args.scale, args.device, args.seed)
            print("wrote " + ", ".join(map(str, files)))
        else:
            frame = schelling.evaluate(args.coop_job_dir, args.defect_job_dir, args.episodes, args.device,
                                       args.seed, args.focal)
            print(frame.groupby(["num_cooperators", "role"])["payoff"].mean().unstack().to_string())
            print(f"wrote {args.coop_job_dir}/eval/schelling.csv")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
