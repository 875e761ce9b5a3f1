// Copy buttons for links. The async clipboard needs a secure context (HTTPS or localhost); on a
// plain-HTTP LAN address the text is selected and copied the old way.

const FEEDBACK_MS = 1800;

async function copyText(text, field) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // permission refused: fall through to the selection
    }
  }
  if (!field) return false;
  field.focus();
  field.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}

// Wires `button` to copy the value of the input `field`.
export function wireCopyButton(button, field) {
  const label = button.textContent;
  let timer = 0;
  button.addEventListener('click', async () => {
    const isCopied = await copyText(field.value, field);
    button.textContent = isCopied ? 'Copied' : 'Select and copy';
    button.dataset.copied = String(isCopied);
    if (!isCopied) {
      field.focus();
      field.select();
    }
    clearTimeout(timer);
    timer = setTimeout(() => {
      button.textContent = label;
      delete button.dataset.copied;
    }, FEEDBACK_MS);
  });
}

// A read-only link field with a Copy button, as a DOM fragment (for links made at run time).
export function linkRow(labelText, url) {
  const row = document.createElement('div');
  row.className = 'link-row';
  const label = document.createElement('label');
  const id = `link-${Math.random().toString(36).slice(2, 10)}`;
  label.htmlFor = id;
  label.className = 'field-label';
  label.textContent = labelText;
  const group = document.createElement('div');
  group.className = 'copy-group';
  const field = document.createElement('input');
  field.id = id;
  field.type = 'text';
  field.readOnly = true;
  field.value = url;
  field.className = 'link-field';
  field.addEventListener('focus', () => field.select());
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'btn btn-secondary';
  button.textContent = 'Copy';
  button.setAttribute('aria-label', `Copy ${labelText.toLowerCase()}`);
  wireCopyButton(button, field);
  group.append(field, button);
  row.append(label, group);
  return row;
}
