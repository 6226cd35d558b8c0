# How long a notification can take, for the timeout of `notify@.service`. One formula, the binary's:
# `deliveryWorstCase` is src/notify/deliver.rs `Policy::worst_case` (what `persistctl check-config
# --json` prints as `notifications.deliveryWorstCaseSeconds`; tests/nix_eval.rs checks that they agree
# for a grid of settings). Pure lib: no pkgs, so the unit's timeout is known at evaluation time.
{ lib }:
let
  # src/notify/deliver.rs MAX_RETRY_DELAY: the doubling pause stops growing here.
  maxRetryDelay = 60;
  # src/notify/cli.rs JOURNAL_TIMEOUT: a failed unit's journal lines for `errorMessage`.
  journalSeconds = 10;
  # Starting persistctl, reading the config, killing a program that overran (1 s), with room to spare.
  slackSeconds = 30;

  pow2 = n: if n == 0 then 1 else 2 * pow2 (n - 1);
in
rec {
  inherit maxRetryDelay journalSeconds slackSeconds;

  /**
    The longest delivery to every backend takes with these settings (`modules.notifications`'s
    `timeout`, `attempts`, `retryDelay`), in seconds: every attempt timing out, with the pauses
    between them (`retryDelay`, doubled each time, at most `maxRetryDelay`).
  */
  deliveryWorstCase =
    {
      timeout,
      attempts,
      retryDelay,
      ...
    }:
    let
      n = lib.max 1 attempts;
      pauses = lib.foldl' (acc: i: acc + lib.min maxRetryDelay (retryDelay * pow2 i)) 0 (lib.genList (i: i) (n - 1));
    in
    timeout * n + pauses;

  /**
    `TimeoutStartSec` of `notify@.service`: the delivery's worst case, the journal read before it,
    and slack, so that persistctl's own deadline always fires first.
  */
  unitTimeout = settings: deliveryWorstCase settings + journalSeconds + slackSeconds;
}
