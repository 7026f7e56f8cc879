// The draft-07 JSON Schema of the configuration file, generated from the zod schema so that the
// two never disagree. `config/amk-bridge.schema.json` is this output (`amk-bridge print-schema`),
// and editors pick it up through the `yaml-language-server` modeline in the YAML file.

import { z } from 'zod';
import { configSchema } from './schema.js';

export const CONFIG_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/** The JSON Schema (draft-07) of what may be written in the config file. */
export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(configSchema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  const { $schema: _ignored, title, description, ...rest } = generated;
  return {
    $schema: CONFIG_SCHEMA_DRAFT,
    $comment: 'Generated from src/config/schema.ts by `amk-bridge print-schema`; do not edit by hand.',
    title: title ?? 'amk-bridge configuration',
    description,
    ...rest,
  };
}

/** The schema as the text committed in config/amk-bridge.schema.json. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
