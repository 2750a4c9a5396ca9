"""Decision stage: the policy turns findings into verdicts (pure: facts in, verdicts out)."""
