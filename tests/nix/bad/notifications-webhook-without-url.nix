# A webhook needs its URL, given in the config or (when it holds a secret) in a file.
{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    backends.webhook.ops.tokenFile = "/run/secrets/hook-token";
  };
}
