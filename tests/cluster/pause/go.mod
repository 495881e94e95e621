module github.com/kube-zen/zen-watcher/tests/cluster/pause

go 1.22
