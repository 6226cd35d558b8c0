# An ntfy server is an http(s) URL.
{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    backends.ntfy.phone = {
      url = "ntfy.sh";
      topic = "homelab";
    };
  };
}
