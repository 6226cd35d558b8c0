# persistctl's timeouts stop at 7 days (604800 s).
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.usedBy = [ "app" ];
  modules.storage.datasets.services.app.preseed = {
    enable = true;
    allowEmptyBootstrap = true;
    timeout = 9223372036854775807;
  };
}
