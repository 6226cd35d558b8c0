# What `properties` may contain: the native filesystem properties persistctl can set, with the
# values of those that take a fixed set of words. Mirrors src/zfs/props.rs (the authority, checked
# again at build time by `persistctl check-config`); kept here so a typo such as `atim = "off"`
# fails evaluation with the option's name.
{ lib }:
let
  onOff = [
    "on"
    "off"
  ];
  any = null; # no word list: anything the binary accepts (sizes, counts, text)
in
{
  # name -> list of allowed values, or null when the value is not a fixed word.
  native = {
    canmount = [
      "on"
      "off"
      "noauto"
    ];
    atime = onOff;
    relatime = onOff;
    xattr = [
      "on"
      "off"
      "sa"
      "dir"
    ];
    acltype = [
      "off"
      "noacl"
      "posix"
      "posixacl"
      "nfsv4"
    ];
    aclinherit = [
      "discard"
      "noallow"
      "restricted"
      "passthrough"
      "passthrough-x"
    ];
    aclmode = [
      "discard"
      "groupmask"
      "passthrough"
      "restricted"
    ];
    logbias = [
      "latency"
      "throughput"
    ];
    sync = [
      "standard"
      "always"
      "disabled"
    ];
    quota = any;
    refquota = any;
    reservation = any;
    refreservation = any;
    special_small_blocks = any;
    primarycache = [
      "all"
      "none"
      "metadata"
    ];
    secondarycache = [
      "all"
      "none"
      "metadata"
    ];
    redundant_metadata = [
      "all"
      "most"
      "some"
      "none"
    ];
    dnodesize = [
      "legacy"
      "auto"
      "1k"
      "2k"
      "4k"
      "8k"
      "16k"
    ];
    snapdir = [
      "hidden"
      "visible"
    ];
    checksum = [
      "on"
      "off"
      "fletcher2"
      "fletcher4"
      "sha256"
      "noparity"
      "sha512"
      "skein"
      "edonr"
      "blake3"
    ];
    dedup = any;
    copies = [
      "1"
      "2"
      "3"
    ];
    readonly = onOff;
    exec = onOff;
    setuid = onOff;
    devices = onOff;
    nbmand = onOff;
    overlay = onOff;
    vscan = onOff;
    zoned = onOff;
    sharenfs = any;
    sharesmb = any;
    keylocation = any;
    context = any;
    fscontext = any;
    defcontext = any;
    rootcontext = any;
    filesystem_limit = any;
    snapshot_limit = any;
    # Create-time-only: applied when the dataset is created; a later difference is reported by
    # `persistctl plan`, never "fixed" by recreating the dataset.
    casesensitivity = [
      "sensitive"
      "insensitive"
      "mixed"
    ];
    normalization = [
      "none"
      "formC"
      "formD"
      "formKC"
      "formKD"
    ];
    utf8only = onOff;
    encryption = [
      "on"
      "off"
      "aes-128-ccm"
      "aes-192-ccm"
      "aes-256-ccm"
      "aes-128-gcm"
      "aes-192-gcm"
      "aes-256-gcm"
    ];
    keyformat = [
      "raw"
      "hex"
      "passphrase"
    ];
    pbkdf2iters = any;
  };

  # Native properties that have their own option.
  shorthands = {
    recordsize = "recordsize";
    compression = "compression";
    mountpoint = "mountpoint";
  };

  # `module:name`: lower-case letters, digits and `: + . _ -`, at least one colon, not first.
  validUserPropertyName =
    name:
    builtins.stringLength name <= 255
    && builtins.match "[a-z0-9._-][a-z0-9:._-]*" name != null
    && lib.hasInfix ":" name;
}
