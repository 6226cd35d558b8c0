# A template that is not built in needs a title and a body.
{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    templates.disk-full.title = "Pool full";
  };
}
