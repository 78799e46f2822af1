/**
 * English / Simplified Chinese. English text is the key; `zh` holds translations
 * (a test checks every `t('…')` key used in src/ has one).
 */
import { zh } from './i18n-zh';
import { store, useStore } from './store';

export type Lang = 'en' | 'zh';

function initial(): Lang {
  const saved = localStorage.getItem('tw.lang');
  if (saved === 'en' || saved === 'zh') return saved;
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export const lang = store<Lang>(initial());

export function setLang(l: Lang): void {
  localStorage.setItem('tw.lang', l);
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
  lang.set(l);
}
document.documentElement.lang = lang.get() === 'zh' ? 'zh-CN' : 'en';

/** Translates `key`, replacing `{name}` placeholders from `vars`. */
export function t(key: string, vars?: Record<string, string | number>): string {
  let s = lang.get() === 'zh' ? zh[key] ?? key : key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

/** Subscribes a component to language changes. */
export const useLang = () => useStore(lang);
