"""`kemu fault kill POD [-c C]`: a container's process dies (SIGKILL), and the kubelet
reacts as to any crash: the restart policy, back-off, readiness and liveness.

A container that runs a real process gets the signal; the kubelet's monitor sees it exit
(emu/cluster/kubelet.py). A container served by kemu's stand-in (no process of its own:
one server answers for every such pod) is treated as having died the same way: restarted
at once under restartPolicy Always or OnFailure (not ready until its readiness probe
passes again), terminated with exit code 137 under Never; its ports keep answering meanwhile, as the
stand-in is shared.
"""

from __future__ import annotations

import os
import signal

from emu.cluster.kubelet import Kubelet
from emu.errors import NotFoundError, Problem, ValidationError

SIGKILL_EXIT = 128 + signal.SIGKILL  # what a container runtime reports for a killed process


def kill_container(k: Kubelet, pod_key: str, container: str | None) -> str:
    with k.lock:
        st = k.pods.get(pod_key)
        if st is None or st.terminating:
            raise NotFoundError(f"pod {pod_key} not found (or terminating)")
        names = [c.name for c in st.pod.spec.containers]
        name = container or (names[0] if len(names) == 1 else "")
        if name not in names or name not in st.containers:
            raise ValidationError(
                [Problem("<command line>", container or pod_key, f"pod {pod_key} has containers {', '.join(names)}: pick one with -c")]
            )
        c = next(x for x in st.pod.spec.containers if x.name == name)
        cs = st.containers[name]
        k._event(st, "Killed", f"Container {name} was killed (kemu fault kill)", name, warning=True)
        if cs.proc is not None:
            os.kill(cs.proc.ref.pid, signal.SIGKILL)  # the monitor sees it exit and applies the restart policy
            return f"container {name} of pod {pod_key} killed (pid {cs.proc.ref.pid})"
        if cs.state != "running":
            return f"container {name} of pod {pod_key} is not running ({cs.reason or cs.state})"
        if st.pod.spec.restart_policy in ("Always", "OnFailure"):  # 137 is a failure
            restart = True
        else:
            restart = False
            with k.status:
                st.ready[name] = False
            cs.state, cs.reason, cs.exit_code = "terminated", "Error", SIGKILL_EXIT
    if restart:
        k._restart_container(st, c, "killed")
    else:
        k.on_change()
    return f"container {name} of pod {pod_key} killed"
