// Progressive enhancement only: every page works without this file.
// A form with data-confirm asks before it is sent (voids, revocations).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});
// A shown-once key is selected for copying.
const key = document.getElementById("new-key");
if (key) key.select();
