# Option types for modules.storage.datasets that catch mistakes at evaluation time.
#
# Needs nothing but nixpkgs' lib. The binary re-checks everything (`persistctl check-config`,
# core/src/config/ and core/src/zfs/props.rs are the authority); these types exist so that a typo fails
# `nixos-rebuild` with the option's name instead of failing at build time or at activation.
{ lib }:
let
  inherit (builtins)
    all
    elem
    isInt
    isPath
    isString
    match
    stringLength
    ;
  inherit (lib) concatStringsSep splitString;
  # The property model (core/src/zfs/props.rs, through the generated ./properties.json).
  props = import ./properties.nix { inherit lib; };

  # A string type with a readable description and a predicate. Definitions must agree
  # (mergeEqualOption), like types.str.
  checkedString =
    {
      name,
      description,
      check,
      acceptPaths ? false,
    }:
    lib.mkOptionType {
      inherit name description;
      descriptionClass = "noun";
      check = x: (isString x || (acceptPaths && isPath x)) && check (toString x);
      # toString keeps a path value out of the store: a secret's path must not copy the secret.
      merge = loc: defs: toString (lib.mergeEqualOption loc defs);
    };

  pow2 = n: if n == 0 then 1 else 2 * pow2 (n - 1);

  isPowerOfTwo = n: n > 0 && (n == 1 || (lib.mod n 2 == 0 && isPowerOfTwo (n / 2)));

  # "16K" -> 16384, "1M" -> 1048576, "131072" -> 131072, anything else -> null.
  # At most 9 digits, so the product can never overflow.
  parseRecordsize =
    s:
    let
      m = match "([1-9][0-9]{0,8})([KM]?)" s;
      n = lib.toInt (builtins.elemAt m 0);
      suffix = builtins.elemAt m 1;
    in
    if m == null then
      null
    else if suffix == "K" then
      n * 1024
    else if suffix == "M" then
      n * 1024 * 1024
    else
      n;

  validRecordsize =
    s:
    let
      bytes = parseRecordsize s;
    in
    bytes != null
    && isPowerOfTwo bytes
    && bytes >= props.properties.recordsize.min
    && bytes <= props.properties.recordsize.max;

  # One component of a dataset name, as zfs_namecheck.c (and core/src/zfs/parse.rs) allow it.
  validComponent =
    c: c != "." && c != ".." && match "[A-Za-z0-9_.: -]+" c != null;

  # A pool name as zpool accepts one (core/src/zfs/namecheck.rs): a letter first (so never "-1" or
  # "--help"), at most 246 bytes, not starting with mirror/raidz/draid/spare, not log, cache,
  # special or dedup. Solaris' "c0..." rule is not applied (OpenZFS on Linux allows it).
  validPoolName =
    p:
    match "[A-Za-z].*" p != null
    && stringLength p <= 246
    && match "(mirror|raidz|draid|spare).*" p == null
    && !(elem p [
      "log"
      "cache"
      "special"
      "dedup"
    ]);

  # At most 255 bytes, at most 49 "/" deep (zfs_max_dataset_nesting), a valid pool first.
  validDatasetName =
    s:
    let
      parts = splitString "/" s;
    in
    stringLength s <= 255
    && builtins.length parts <= 50
    && all validComponent parts
    && validPoolName (builtins.head parts);

  # Linux: under PATH_MAX (4096) bytes, each component under NAME_MAX (255).
  validAbsolutePath =
    s:
    let
      parts = lib.tail (splitString "/" s);
    in
    match "/.*" s != null
    && match ".*[[:cntrl:]].*" s == null
    && !(elem "." parts)
    && !(elem ".." parts)
    && stringLength s <= 4095
    && all (c: stringLength c <= 255) parts;

  # The values `compression=` accepts (OpenZFS 2.1 - 2.3), from the binary's property model.
  compressionValues = props.properties.compression.values;

  # A user or group: a name as core/src/config/datasets.rs accepts it, or a numeric id.
  validAccount =
    s: match "[0-9]+" s != null || (stringLength s <= 32 && match "[a-z_][a-z0-9_.-]*[$]?" s != null);
in
rec {
  inherit
    compressionValues
    parseRecordsize
    validRecordsize
    validComponent
    validPoolName
    validDatasetName
    validAbsolutePath
    validAccount
    isPowerOfTwo
    ;

  recordsize = checkedString {
    name = "recordsize";
    description = ''recordsize (a power of two from 512 to 16M, as bytes or with a K or M suffix: "16K", "1M", "131072")'';
    check = validRecordsize;
  };

  compression = checkedString {
    name = "compression";
    description = "ZFS compression (on, off, lz4, lzjb, zle, gzip, gzip-1..9, zstd, zstd-1..19, zstd-fast, zstd-fast-N with N in 1..10, 20..100 by 10, 500, 1000)";
    check = v: elem v compressionValues;
  };

  datasetName = checkedString {
    name = "datasetName";
    description = ''ZFS dataset name (pool/child/...: components of letters, digits, "_", "-", ".", ":" and space; at most 255 bytes and 49 levels; the pool starts with a letter and is not a vdev keyword such as mirror, raidz, draid, spare, log, cache, special or dedup)'';
    check = validDatasetName;
  };

  absolutePath = checkedString {
    name = "absolutePath";
    description = ''absolute path (no "." or ".." components, at most 4095 bytes, each component at most 255)'';
    check = validAbsolutePath;
    acceptPaths = true;
  };

  # A path to a secret: the value is only ever a path on the target host, never copied to the store.
  secretPath = checkedString {
    name = "secretPath";
    description = "absolute path of a file on the target host (read at run time, never copied to the Nix store; at most 4095 bytes, each component at most 255)";
    check = validAbsolutePath;
    acceptPaths = true;
  };

  octalMode = checkedString {
    name = "octalMode";
    description = ''octal file mode ("0750", "750", "2770")'';
    check = s: match "[0-7]{3,4}" s != null;
  };

  account = checkedString {
    name = "account";
    description = "user or group name (lower case, at most 32 characters) or numeric id";
    check = validAccount;
  };

  positiveSeconds = lib.types.ints.positive // {
    description = "number of seconds (at least 1)";
  };

  # persistctl's own timeouts: 1 s to 7 days (core/src/config/mod.rs MAX_TIMEOUT_SECS), so a deadline can
  # never overflow.
  timeoutSeconds = lib.types.ints.between 1 604800 // {
    description = "number of seconds, from 1 to 604800 (7 days)";
  };

  # `persistctl --zfs-timeout` takes 1 s to 1 day.
  zfsCallSeconds = lib.types.ints.between 1 86400 // {
    description = "number of seconds, from 1 to 86400 (1 day)";
  };

  # A restic tag: `--tag a,b` means two tags, so a comma can never be part of one.
  resticTag = checkedString {
    name = "resticTag";
    description = ''restic tag (no ",", no whitespace)'';
    check = s: match "[^,[:space:]]+" s != null;
  };

  replicaHost = checkedString {
    name = "replicaHost";
    description = ''ssh destination ("host" or "user@host")'';
    check = s: match "[^-[:space:][:cntrl:]][^[:space:][:cntrl:]]*" s != null;
  };

  # A top-level entry name (no "/").
  fileName = checkedString {
    name = "fileName";
    description = ''file name (no "/", not "." or "..")'';
    check = s: s != "." && s != ".." && match "[^/[:cntrl:]]+" s != null;
  };

  # barman-cloud (modules.database.postgresql.pitr), as core/src/config/barman.rs checks them.

  # A server name: one cluster's base backups and WAL under the destination.
  barmanServerName = checkedString {
    name = "barmanServerName";
    description = ''barman server name (letters, digits, ".", "_", "-"; not starting with "-", not "." or "..")'';
    check = s: s != "." && s != ".." && match "[A-Za-z0-9._][A-Za-z0-9._-]*" s != null;
  };

  # The seed's `s3Bucket`: a bucket and an optional prefix, without the scheme.
  s3Bucket = checkedString {
    name = "s3Bucket";
    description = ''S3 bucket with an optional prefix, without "s3://" ("homelab-pitr" or "homelab-pitr/forge"; no spaces, no "@")'';
    check = s: match "[A-Za-z0-9][A-Za-z0-9._-]*(/[^[:space:][:cntrl:]@]*)?" s != null;
  };

  barmanDestination = checkedString {
    name = "barmanDestination";
    description = ''barman-cloud destination URL ("s3://bucket/prefix", "gs://bucket/prefix" or an "https://" Azure container URL; no spaces, no credentials)'';
    check = s: match "(s3|gs|https)://[^/[:space:][:cntrl:]@]+(/[^[:space:][:cntrl:]@]*)?" s != null;
  };

  httpUrl = checkedString {
    name = "httpUrl";
    description = ''http:// or https:// URL (no spaces, no credentials)'';
    check = s: match "https?://[^/[:space:][:cntrl:]@]+(/[^[:space:][:cntrl:]@]*)?" s != null;
  };

  # `barman-cloud-backup-delete --retention-policy`; n is 1 or more, without a leading zero.
  barmanRetention = checkedString {
    name = "barmanRetention";
    description = ''barman retention policy ("RECOVERY WINDOW OF <n> DAYS", "... WEEKS", "... MONTHS" or "REDUNDANCY <n>", n ≥ 1)'';
    check =
      s:
      match "REDUNDANCY [1-9][0-9]{0,8}" s != null
      || match "RECOVERY WINDOW OF [1-9][0-9]{0,8} (DAYS|WEEKS|MONTHS)" s != null;
  };

  rfc3339Time = checkedString {
    name = "rfc3339Time";
    description = ''RFC 3339 time with an offset ("2026-12-01T21:27:59Z", "2026-12-01T22:27:59.5+01:00")'';
    check =
      s:
      match "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])" s
      != null;
  };

  barmanBackupId = checkedString {
    name = "barmanBackupId";
    description = ''barman backup id (YYYYMMDDTHHMMSS, e.g. "20261201T212759")'';
    check = s: match "[0-9]{8}T[0-9]{6}" s != null;
  };

  # A PostgreSQL time setting written with a unit, as postgresql.conf takes it ("5min", "60s").
  pgDuration = checkedString {
    name = "pgDuration";
    description = ''PostgreSQL duration ("60s", "5min", "1h": a whole number and one of ms, s, min, h, d)'';
    check = s: match "[0-9]{1,9} ?(ms|s|min|h|d)" s != null;
  };

  inherit pow2;
}
