# A restic repository, declared once: the options `backup.restic` and `preseed.restic` share, and the
# object persistctl's config takes for one (src/config.rs `ResticConfig`: `preseed.restic` and
# `monitoring.backups.<name>`). Pure lib: no pkgs.
{ lib }:
let
  inherit (lib) mkOption types;
  t = import ./checked-types.nix { inherit lib; };

  declarations = {
    repository = {
      type = types.nullOr types.str;
      default = null;
    };
    repositoryFile = {
      type = types.nullOr t.secretPath;
      default = null;
      example = "/run/secrets/restic-repository";
      description = "File holding the repository location. Set this or `repository`.";
    };
    passwordFile = {
      type = types.nullOr t.secretPath;
      default = null;
      example = "/run/secrets/restic-password";
    };
    environmentFile = {
      type = types.nullOr t.secretPath;
      default = null;
      example = "/run/secrets/restic-s3.env";
      description = "`KEY=value` lines for restic, such as S3 credentials.";
    };
    tags = {
      type = types.listOf t.resticTag;
    };
  };
in
{
  /**
    The repository options: `repository`, `repositoryFile`, `passwordFile`, `environmentFile` and
    `tags`, with their types. `settings.<option>` is merged into that option's declaration: the
    default (and its text), example and description that say what the repository is for there.
    `tags` has no default of its own.
  */
  repositoryOptions =
    settings:
    let
      unknown = builtins.attrNames (builtins.removeAttrs settings (builtins.attrNames declarations));
    in
    assert lib.assertMsg (unknown == [ ]) "nix/lib/restic.nix: repositoryOptions has no option ${toString unknown}";
    lib.mapAttrs (name: declaration: mkOption (declaration // settings.${name} or { })) declarations;

  /**
    The config object (`ResticConfig`) for a repository declared with `repositoryOptions`; `path`
    and `host` are null unless the repository has them (`preseed.restic` does, a backup job not).
  */
  toConfig = r: {
    inherit (r)
      repository
      repositoryFile
      passwordFile
      environmentFile
      tags
      ;
    path = r.path or null;
    host = r.host or null;
  };
}
