"""The pages' HTML, JavaScript and CSS. Packaged as `livecommerce.webroot` (see pyproject.toml),
so that `livecommerce.resources` finds this folder in a checkout and in an installed wheel alike."""
