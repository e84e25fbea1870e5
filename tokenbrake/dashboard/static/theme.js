// Before the page draws: the theme the user chose last (else the system's, from the CSS).
try {
  const chosen = localStorage.getItem("tb-theme");
  if (chosen === "light" || chosen === "dark") document.documentElement.dataset.theme = chosen;
} catch (e) { /* storage off: the system's theme */ }
