"""Report sources: the kinds we watch (`kinds`, pure data), what every mapper shares (`common`),
the PolicyReport and trivy-operator mappers (`policy`, `trivy`), and the entry point that picks
one by kind (`dispatch`). Import the module you need: `kinds` alone pulls in no mapper."""
