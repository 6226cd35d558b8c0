# Pure helpers of modules.replication.zfs (nixpkgs' lib only).
{ lib }:
let
  inherit (lib)
    concatStringsSep
    filterAttrs
    hasPrefix
    mapAttrsToList
    removePrefix
    ;
in
rec {
  /**
    The systemd unit name nixpkgs' syncoid module gives a command: every run of characters other
    than letters, digits, `_ . -` becomes one `-` (so `tank/persist` is `syncoid-tank-persist`).
  */
  syncoidUnitName =
    name:
    "syncoid-"
    + lib.concatStrings (map (part: if builtins.isList part then "-" else part) (builtins.split "[^a-zA-Z0-9_.-]+" name));

  /**
    `user@host:pool/ds` → { host = "user@host"; dataset = "pool/ds"; }; `pool/ds` → { host = null; ... }.
  */
  splitTarget =
    target:
    let
      m = builtins.match "([^:/]+):(.+)" target;
    in
    if m == null then
      {
        host = null;
        dataset = target;
      }
    else
      {
        host = builtins.elemAt m 0;
        dataset = builtins.elemAt m 1;
      };

  /**
    Where syncoid sends `dataset`: `targets.<dataset>` if set; else `destination` when it is the only
    dataset listed, else `destination/<last component of dataset>`.
  */
  targetOf =
    syncoid: dataset:
    syncoid.targets.${dataset} or (
      if builtins.length syncoid.datasets == 1 then
        syncoid.destination
      else
        "${syncoid.destination}/${baseNameOf dataset}"
    );

  /**
    The replica of a service dataset: the syncoid dataset that holds it (itself, or an ancestor when
    the transfer is recursive) and the same relative path under its target. null when none.
  */
  replicaOf =
    syncoid: dataset:
    let
      holders = builtins.filter (
        d: d == dataset || (syncoid.recursive && hasPrefix "${d}/" dataset)
      ) syncoid.datasets;
      # The deepest holder wins.
      holder = builtins.foldl' (
        best: d: if best == null || builtins.stringLength d > builtins.stringLength best then d else best
      ) null holders;
      split = splitTarget (targetOf syncoid holder);
    in
    if holder == null then
      null
    else
      {
        inherit (split) host;
        dataset = split.dataset + removePrefix holder dataset;
        sshKey = syncoid.sshKey;
      };

  iniValue =
    v:
    if builtins.isList v then
      concatStringsSep "," v
    else if builtins.isBool v then
      (if v then "true" else "false")
    else
      toString v;

  /**
    sanoid.conf as nixpkgs' services.sanoid writes it from `templates` and `datasets`: the sections
    `template_<name>` and `<dataset>` in name order, `key=value` lines in key order, null values left
    out, lists joined with commas, booleans as true/false.
  */
  sanoidConf =
    { templates, datasets }:
    let
      sections = lib.mapAttrs' (name: lib.nameValuePair "template_${name}") templates // datasets;
      section =
        name: values:
        "[${name}]\n"
        + lib.concatStrings (
          mapAttrsToList (k: v: "${k}=${iniValue v}\n") (filterAttrs (_: v: v != null) values)
        );
    in
    concatStringsSep "\n" (mapAttrsToList section sections);
}
