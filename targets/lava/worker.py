"""Worker process for one Lava run: ``python -m neurocompile.targets.lava.worker JOB.pkl RESULT.pkl``.

Runs in its own session so that the parent can kill it together with every process Lava forks.
Prints ``progress N`` lines; writes the result only when the run completed (never half a file)."""
from __future__ import annotations

import os
import pickle
import sys


def main(job_path: str, result_path: str) -> int:
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    from neurocompile.targets.lava.run import LavaExecutable

    exe = LavaExecutable(job["graph"], select_tag=job["select_tag"])
    res = exe.run_here(job["x"], job["steps"])
    tmp = result_path + ".part"
    with open(tmp, "wb") as f:
        pickle.dump(res, f)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
