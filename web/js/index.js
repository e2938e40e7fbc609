// The index of rooms: its links to each room's three pages, in the page's language.

import { onLanguage, t } from "./i18n.js";

function translateLinks() {
  for (const page of ["watch", "studio", "console"]) {
    for (const link of document.querySelectorAll(`.rooms a[href^="/${page}/"]`)) link.textContent = t(`index.${page}`);
  }
  for (const empty of document.querySelectorAll(".rooms li.muted")) empty.textContent = t("index.empty");
}

onLanguage(translateLinks);
translateLinks();
