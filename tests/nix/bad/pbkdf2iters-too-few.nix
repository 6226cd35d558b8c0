# OpenZFS refuses fewer than 100000 PBKDF2 iterations.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties = {
    encryption = "on";
    keyformat = "passphrase";
    pbkdf2iters = "1000";
  };
}
