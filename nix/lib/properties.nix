# What `properties` may contain: the native filesystem properties persistctl can set, with the
# values of those that take a fixed set of words. Generated, not mirrored: ./properties.json is what
# `persistctl properties --json` prints from core/src/zfs/props.rs (the authority, checked again at build
# time by `persistctl check-config`); tests/properties_contract.rs fails when it is stale and
# tests/nix/update-properties.sh regenerates it. Read here, without building the binary, so a typo
# such as `atim = "off"` fails evaluation with the option's name.
{ lib }:
let
  # name -> { class, domain, values, aliases, min, max } (core/src/zfs/props.rs `PropertyModel`).
  model = builtins.fromJSON (builtins.readFile ./properties.json);
in
rec {
  inherit (model) properties;

  # name -> list of allowed values, or null when the value is not a fixed word (sizes, counts, text:
  # anything the binary accepts). Settable and create-time-only ones, but not volblocksize (volumes
  # only: `settableNative`) nor the shorthands below. Create-time-only ones are applied when the dataset
  # is created; a later difference is reported by `persistctl plan`, never "fixed" by recreating it.
  native = lib.genAttrs (builtins.filter (name: !(shorthands ? ${name})) model.settableNative) (
    name: model.properties.${name}.values
  );

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
