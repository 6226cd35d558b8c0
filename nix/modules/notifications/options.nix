# modules.notifications: the options and the `notifications` object they add to
# /etc/persistctl/config.json (docs/notifications.md, docs/config-format.md).
#
# Lib-only, like modules.storage.datasets' options: `lib.evalModules` evaluates it without pkgs
# (nix/render.nix, nix/docs.nix, the eval tests). The units are in ./nixos.nix.
{ config, lib, ... }:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkOption
    types
    ;
  t = import ../../lib/checked-types.nix { inherit lib; };
  cfg = config.modules.notifications;
  prefix = "modules.notifications";

  builtinTemplates = [
    "preseed-empty-bootstrap"
    "preseed-failure"
    "preseed-skipped"
    "preseed-success"
    "sanoid-failure"
    "status-change"
    "syncoid-lag-warning"
    "unit-failure"
  ];

  priority = types.enum [
    "min"
    "low"
    "medium"
    "high"
    "urgent"
  ];

  url = types.strMatching "https?://[^/[:space:]][^[:space:]]*" // {
    description = "http:// or https:// URL";
  };

  name = types.strMatching "[a-z0-9][a-z0-9_-]{0,63}" // {
    description = "name of lower-case letters, digits, `-` and `_`";
  };

  common = {
    enable = mkOption {
      type = types.bool;
      default = true;
      example = false;
      description = "Whether notifications go to this backend.";
    };
    minPriority = mkOption {
      type = priority;
      default = "min";
      example = "high";
      description = "Notifications below this priority are not sent to this backend.";
    };
  };

  backendOption =
    example: description: options:
    mkOption {
      type = types.attrsOf (
        types.submodule {
          options = common // options;
        }
      );
      default = { };
      inherit example description;
    };

  templateModule = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        example = false;
        description = "Off: `persistctl notify <name>` sends nothing (and exits 0).";
      };
      priority = mkOption {
        type = types.nullOr priority;
        default = null;
        example = "high";
        description = "How urgent (null: the built-in template's priority, else medium).";
      };
      title = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = literalExpression ''"Data Restored: \''${serviceName}"'';
        description = "One line with `\${variable}` references (null: the built-in template's title).";
      };
      body = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = literalExpression ''"Source: \''${restoreSource}\nDuration: \''${duration}"'';
        description = ''
          The text, with `''${variable}` and `''${variable:-default}` references; `$''${` is a
          literal `''${` (null: the built-in template's body).
        '';
      };
    };
  };

  errors =
    lib.concatLists (
      lib.mapAttrsToList (
        n: w:
        lib.optional (
          (w.url == null) == (w.urlFile == null)
        ) "${prefix}.backends.webhook.${n}: set exactly one of url and urlFile"
      ) cfg.backends.webhook
    )
    ++ lib.concatLists (
      lib.mapAttrsToList (
        n: tpl:
        lib.optional (
          tpl.enable && !(builtins.elem n builtinTemplates) && (tpl.title == null || tpl.body == null)
        ) "${prefix}.templates.${n}: set title and body (it is not a built-in template)"
        ++ lib.optional (
          builtins.match "[a-z0-9][a-z0-9_-]{0,63}" n == null
        ) "${prefix}.templates.${lib.strings.escapeNixIdentifier n}: a template name is lower-case letters, digits, `-` and `_`"
      ) cfg.templates
    )
    ++ lib.concatLists (
      lib.mapAttrsToList (
        unit: tpl:
        lib.optional (
          !(builtins.elem tpl builtinTemplates) && !(cfg.templates ? ${tpl})
        ) "${prefix}.unitTemplates.\"${unit}\": no template \"${tpl}\""
      ) cfg.unitTemplates
    );

  strip = lib.mapAttrs (_: b: builtins.removeAttrs b [ "_module" ]);
in
{
  options.modules.notifications = {
    enable = mkEnableOption "notifications through `persistctl notify` and the `notify@.service` template unit";

    timeout = mkOption {
      type = types.ints.between 1 600;
      default = 10;
      example = 30;
      description = "Seconds one delivery attempt may take (an HTTP request from connect to answer, or a program's run).";
    };
    attempts = mkOption {
      type = types.ints.between 1 10;
      default = 3;
      example = 5;
      description = "Attempts per backend; a network error, a timeout, HTTP 5xx/429 or a failed program is retried, HTTP 4xx is not.";
    };
    retryDelay = mkOption {
      type = types.ints.between 0 300;
      default = 2;
      example = 10;
      description = "Seconds before the second attempt; doubled before each further one (at most 60).";
    };

    backends = {
      ntfy =
        backendOption
          (literalExpression ''
            {
              phone = {
                url = "https://ntfy.sh";
                topic = "homelab-forge";
                tokenFile = "/run/secrets/ntfy-token";
              };
            }
          '')
          "ntfy servers: a JSON publish (`topic`, `title`, `message`, `priority` 1 … 5) POSTed to `url`."
          {
            url = mkOption {
              type = url;
              example = "https://ntfy.sh";
              description = "The server's URL.";
            };
            topic = mkOption {
              type = types.strMatching "[A-Za-z0-9_-]{1,64}";
              example = "homelab";
              description = "The topic.";
            };
            tokenFile = mkOption {
              type = types.nullOr t.secretPath;
              default = null;
              example = "/run/secrets/ntfy-token";
              description = "File holding an access token, sent as `Authorization: Bearer`; null for none.";
            };
          };

      webhook =
        backendOption
          (literalExpression ''
            {
              ops = {
                urlFile = "/run/secrets/ops-webhook-url";
              };
            }
          '')
          "Generic webhooks: a JSON POST (`source`, `template`, `priority`, `title`, `body`, `variables`)."
          {
            url = mkOption {
              type = types.nullOr url;
              default = null;
              example = "https://hooks.example.org/persistctl";
              description = "The URL, when it holds no secret. Set this or `urlFile`.";
            };
            urlFile = mkOption {
              type = types.nullOr t.secretPath;
              default = null;
              example = "/run/secrets/webhook-url";
              description = "File holding the URL (webhook URLs often carry their secret); never logged.";
            };
            tokenFile = mkOption {
              type = types.nullOr t.secretPath;
              default = null;
              example = "/run/secrets/webhook-token";
              description = "File holding a token sent as `Authorization: Bearer`; null for none.";
            };
          };

      pushover =
        backendOption
          (literalExpression ''
            {
              me = {
                tokenFile = "/run/secrets/pushover-app-token";
                userFile = "/run/secrets/pushover-user-key";
              };
            }
          '')
          "Pushover: a form POST; priority urgent is Pushover's emergency priority (repeated until acknowledged)."
          {
            apiUrl = mkOption {
              type = url;
              default = "https://api.pushover.net/1/messages.json";
              example = "https://api.pushover.net/1/messages.json";
              description = "The messages endpoint.";
            };
            tokenFile = mkOption {
              type = t.secretPath;
              example = "/run/secrets/pushover-app-token";
              description = "File holding the application token.";
            };
            userFile = mkOption {
              type = t.secretPath;
              example = "/run/secrets/pushover-user-key";
              description = "File holding the user (or group) key.";
            };
          };

      email =
        backendOption
          (literalExpression ''
            {
              admin = {
                to = [ "admin@example.org" ];
                from = "forge@example.org";
              };
            }
          '')
          "Mail: the message on the stdin of `<sendmail> -i <to>...` (a local MTA, msmtp, ...)."
          {
            sendmail = mkOption {
              type = types.str;
              default = "/run/wrappers/bin/sendmail";
              example = literalExpression ''"''${pkgs.msmtp}/bin/sendmail"'';
              description = "A sendmail-compatible program.";
            };
            from = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "forge@example.org";
              description = "The `From:` address; null lets sendmail choose.";
            };
            to = mkOption {
              type = types.nonEmptyListOf types.str;
              example = [ "admin@example.org" ];
              description = "Recipients.";
            };
          };

      command =
        backendOption
          (literalExpression ''
            {
              matrix = {
                command = [ "''${pkgs.matrix-commander}/bin/matrix-commander" "--message-from-env" ];
              };
            }
          '')
          ''
            Any program, run with the notification in `PERSISTCTL_NOTIFY_TEMPLATE`, `_PRIORITY`, `_TITLE`,
            `_BODY` and `_VARS` (JSON); non-zero exit is a failed attempt.
          ''
          {
            command = mkOption {
              type = types.nonEmptyListOf types.str;
              example = [
                "/run/current-system/sw/bin/logger"
                "-t"
                "persistctl"
              ];
              description = "Program, then arguments (no shell).";
            };
          };
    };

    templates = mkOption {
      type = types.attrsOf (types.submodule templateModule);
      default = { };
      example = literalExpression ''
        {
          preseed-skipped.enable = false;
          preseed-failure.priority = "urgent";
          disk-full = {
            priority = "high";
            title = "Pool \''${pool} is \''${pct}% full";
            body = "Host: \''${hostname}";
          };
        }
      '';
      description = ''
        Templates by name. Built in (seed 4.4 and 5.3): ${lib.concatStringsSep ", " builtinTemplates};
        an entry here overrides a built-in one field by field, or adds a new one (then `title` and
        `body` are required). `''${hostname}` is always set. In Nix, write `''${name}` as `\''${name}` in
        "..." strings and as `'''''${name}` in '''...''' strings.
      '';
    };

    unitTemplates = mkOption {
      type = types.attrsOf types.str;
      default = {
        "sanoid.service" = "sanoid-failure";
      };
      example = {
        "sanoid.service" = "sanoid-failure";
        "restic-backups-sonarr.service" = "backup-failure";
      };
      description = ''
        Failed unit → template, for `notify@<unit>.service` (`OnFailure=notify@%n.service`); a unit not
        listed gets `unit-failure`. The template gets `unit`, `serviceName`, `result`, `exitStatus`
        and `errorMessage` (the failed run's last journal lines).
      '';
    };

    onFailure = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "sanoid"
        "restic-backups-sonarr"
      ];
      description = "systemd services (names without `.service`) that get `OnFailure=notify@%n.service`.";
    };

    settings = mkOption {
      type = types.raw;
      internal = true;
      readOnly = true;
      description = "The `notifications` object of /etc/persistctl/config.json (docs/config-format.md).";
    };
  };

  config.modules.notifications.settings =
    if errors != [ ] then
      throw ''
        The modules.notifications configuration has ${toString (builtins.length errors)} problem${
          if builtins.length errors == 1 then "" else "s"
        }:
        ${lib.concatMapStrings (e: "  - ${e}\n") errors}''
    else
      {
        inherit (cfg)
          timeout
          attempts
          retryDelay
          unitTemplates
          ;
        backends = lib.mapAttrs (_: strip) cfg.backends;
        templates = strip cfg.templates;
      };
}
