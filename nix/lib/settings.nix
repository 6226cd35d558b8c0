# config.modules.storage.datasets -> the object written to /etc/persistctl/config.json
# (docs/config-format.md, version 1). Pure lib: no pkgs.
#
# Field-level mistakes are caught by the option types (nix/lib/checked-types.nix). What a type cannot see —
# service names, property names against the property table, sources without their settings, two
# services on one mountpoint — is checked here, and every problem is reported at once, each line
# naming the option, before any JSON exists.
{ lib }:
let
  inherit (builtins)
    attrNames
    elem
    length
    stringLength
    ;
  inherit (lib)
    concatMap
    concatMapStrings
    mapAttrs
    mapAttrsToList
    optional
    optionals
    ;
  types' = import ./checked-types.nix { inherit lib; };
  props = import ./properties.nix { inherit lib; };
  resticLib = import ./restic.nix { inherit lib; };

  prefix = "modules.storage.datasets";

  # `services.foo` or `services."my app"`, the way the module system prints option paths.
  serviceOption = name: "${prefix}.services.${lib.strings.escapeNixIdentifier name}";

  propertyErrors =
    name: service:
    concatMap (
      prop:
      let
        value = service.properties.${prop};
        at = ''${serviceOption name}.properties."${prop}"'';
        words = props.native.${prop} or null;
      in
      if props.shorthands ? ${prop} then
        [ "${at}: set ${serviceOption name}.${prop} instead (it has its own option)" ]
      else if lib.hasInfix ":" prop then
        optional (!props.validUserPropertyName prop) "${at}: a user property name is `module:name` in lower-case letters, digits and `: . _ -`, at most 255 bytes"
      else if !(props.native ? ${prop}) then
        [
          ''${at}: unknown ZFS property "${prop}" (user properties need a colon, e.g. "com.sun:auto-snapshot")''
        ]
      else if lib.strings.trim value != value then
        [ ''${at}: "${value}" has surrounding spaces (zfs refuses them)'' ]
      else
        optional (
          words != null && !(elem value words)
        ) ''${at}: "${value}" is not one of ${lib.concatStringsSep ", " words}''
    ) (attrNames service.properties)
    ++ optional (
      service.properties ? pbkdf2iters
      && (
        builtins.match "[0-9]{1,18}" service.properties.pbkdf2iters == null
        || lib.toInt service.properties.pbkdf2iters < 100000
      )
    ) ''${serviceOption name}.properties."pbkdf2iters": "${service.properties.pbkdf2iters}" is not a number of at least 100000''
    ++ optional (
      service.properties ? keylocation && (service.properties.encryption or "off") == "off"
    ) ''${serviceOption name}.properties."keylocation": keylocation needs properties.encryption (a value other than "off") on the same dataset'';

  # `postgresql`: the config's `postgresql` section (service -> cluster), which a `barman` source needs.
  preseedErrors =
    postgresql: name: service:
    let
      p = service.preseed;
      at = "${serviceOption name}.preseed";
      uses = source: elem source p.sources;
      resticSet = p.restic.repository != null || p.restic.repositoryFile != null;
    in
    optionals p.enable (
      optional (
        length (lib.unique p.sources) != length p.sources
      ) "${at}.sources: lists a source twice"
      ++ optional (
        p.sources == [ ] && !p.allowEmptyBootstrap
      ) "${at}.sources: is empty and allowEmptyBootstrap is false, so the service could never start"
      ++ optional (
        uses "replica" && p.replica.dataset == null
      ) ''${at}.replica.dataset: must be set because sources lists "replica"''
      ++ optional (
        uses "restic" && !resticSet
      ) ''${at}.restic.repository: set it (or restic.repositoryFile) because sources lists "restic"''
      ++ optional (
        p.restic.repository != null && p.restic.repositoryFile != null
      ) "${at}.restic.repository: set repository or repositoryFile, not both"
      ++ optional (
        resticSet && p.restic.passwordFile == null
      ) "${at}.restic.passwordFile: must be set when a restic repository is"
      ++ optional (
        uses "barman" && !(postgresql ? ${name})
      ) ''${at}.sources: lists "barman", but no PostgreSQL cluster is configured on ${name}: the barman source restores the postgres-data dataset of modules.database.postgresql.pitr from its archive''
    );

  # The names persistctl derives (src/config.rs derived_datasets): with a replica source, the staging
  # dataset `<dataset>.persistctl-staging` and the moved-aside `<dataset>.persistctl-empty-<16-char stamp>`.
  nameErrors =
    name: parentDataset: service:
    let
      dataset = "${parentDataset}/${name}";
      p = service.preseed;
      withReplica = p.enable && p.replica.dataset != null;
      aside = "${dataset}.persistctl-empty-20240501T120000Z";
    in
    optional (!types'.validComponent name) "${serviceOption name}: a service name is one dataset name component: letters, digits, `_ - . :` and space, not `.` or `..`, no `/`"
    ++ optional (
      stringLength dataset > 255
    ) "${serviceOption name}: the dataset name ${dataset} is longer than 255 bytes"
    ++ optional (
      withReplica && stringLength dataset <= 255 && stringLength aside > 255
    ) "${serviceOption name}: the moved-aside dataset a replica restore derives (${aside}) would be longer than 255 bytes; shorten parentDataset or the service name";

  mountpointErrors =
    cfg:
    let
      paths = mapAttrsToList (name: service: {
        inherit name;
        inherit (service) path;
      }) cfg.services;
      parentMount = lib.removeSuffix "/" cfg.parentMount;
    in
    concatMap (
      a:
      concatMap (
        b:
        optional (
          a.name < b.name && a.path == b.path
        ) "${serviceOption b.name}.mountpoint: ${b.path} is also the mountpoint of ${serviceOption a.name}"
      ) paths
      ++ optional (
        lib.removeSuffix "/" a.path == parentMount
      ) "${serviceOption a.name}.mountpoint: ${a.path} is the parent's own mountpoint (${prefix}.parentMount)"
    ) paths;

  errorsOf =
    {
      cfg,
      postgresql ? { },
    }:
    concatMap (
      name:
      let
        service = cfg.services.${name};
      in
      nameErrors name cfg.parentDataset service
      ++ propertyErrors name service
      ++ preseedErrors postgresql name service
    ) (attrNames cfg.services)
    ++ mountpointErrors cfg;

  preseedObject =
    p:
    if !p.enable then
      null
    else
      {
        enable = true;
        inherit (p)
          sources
          allowEmptyBootstrap
          timeout
          sourceTimeout
          verifyCommand
          ignore
          dataMarkers
          ;
        replica =
          if p.replica.dataset == null then
            null
          else
            {
              inherit (p.replica) dataset host sshKey;
            };
        restic =
          if p.restic.repository == null && p.restic.repositoryFile == null then
            null
          else
            resticLib.toConfig p.restic;
      };

  serviceObject = service: {
    inherit (service)
      recordsize
      compression
      properties
      mountpoint
      owner
      group
      mode
      ;
    preseed = preseedObject service.preseed;
  };
in
{
  inherit errorsOf;

  /**
    The config object for `cfg` (= config.modules.storage.datasets) and `postgresql` (the
    `postgresql` section, service -> cluster; written only when not empty), or an evaluation error
    that lists every problem, one line per option.
  */
  render =
    {
      cfg,
      postgresql ? { },
    }@args:
    let
      errors = errorsOf args;
    in
    if errors != [ ] then
      throw ''
        The modules.storage.datasets configuration has ${toString (length errors)} problem${
          if length errors == 1 then "" else "s"
        }:
        ${concatMapStrings (e: "  - ${e}\n") errors}''
    else
      {
        version = 1;
        datasets = {
          inherit (cfg) parentDataset parentMount createParent;
          services = mapAttrs (_: serviceObject) cfg.services;
        };
      }
      // lib.optionalAttrs (postgresql != { }) { inherit postgresql; };
}
