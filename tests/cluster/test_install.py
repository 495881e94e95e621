"""`kubectl apply -k manifests/` as shipped: it rolls out, and the pod runs as the manifests say."""

from __future__ import annotations

import yaml

from tests.cluster import deploy
from tests.cluster.images import IMAGE_REPOSITORY, image_tag


def test_rollout_runs_our_image(installed: deploy.Installed) -> None:
    """One Ready pod of our image (the kustomization's `images:` names it), no restarts."""
    pods = installed.ready_pods()
    assert 1 == len(pods)
    status = pods[0]["status"]["containerStatuses"][0]
    assert f"{IMAGE_REPOSITORY}:{image_tag()}" == status["image"].removeprefix("docker.io/")
    assert 0 == status["restartCount"]


def test_runs_as_65532_on_a_read_only_root(installed: deploy.Installed) -> None:
    """The process's real ids are 65532, and writing to / is refused by the kernel."""
    pod = installed.ready_pods()[0]["metadata"]["name"]
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n"
        "    open('/probe', 'w')\n"
        "except OSError as error:\n"
        "    print(error.strerror)\n"
    )
    result = installed.node.kubectl(
        "exec", pod, "-n", deploy.NAMESPACE, "--", "python", "-c", probe
    )
    assert ["65532 65532", "Read-only file system"] == result.stdout.splitlines()
    status = installed.node.kubectl(
        "exec", pod, "-n", deploy.NAMESPACE, "--", "cat", "/proc/1/status"
    ).stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert ["65532"] * 4 == uid_line.split()[1:]


def _pod(name: str, security: dict[str, object]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": deploy.NAMESPACE},
            "spec": {
                "containers": [
                    {"name": "c", "image": "localhost/zen-pause:1", "securityContext": security}
                ]
            },
        }
    )


def test_restricted_admission_refuses_a_privileged_pod(installed: deploy.Installed) -> None:
    """Pod Security admission enforces `restricted` in zen-system: a privileged pod is refused,
    one meeting the profile is admitted (server-side dry run, nothing is left behind)."""
    refused = installed.node.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, stdin=_pod("bad", {"privileged": True})
    )
    assert 0 != refused.returncode
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    compliant = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    admitted = installed.node.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, stdin=_pod("good", compliant)
    )
    assert 0 == admitted.returncode, admitted.stderr
