"""Who the API server says a client is: a SelfSubjectReview, for tests of the ways we log in."""

from __future__ import annotations

from typing import Any

from zenwatcher.kube.client import KubeClient


async def user_info(client: KubeClient) -> dict[str, Any]:
    """The reviewed `status.userInfo` (username, groups) of the client's credentials."""
    review = await client.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    info: dict[str, Any] = review["status"]["userInfo"]
    return info
