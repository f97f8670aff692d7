using System.Text.Json;
using System.Text.Json.Serialization;
using Diffuse.IO;

namespace Diffuse.Sampling;

/// <summary>One setting in sampler.json: the best of a budget, or the reference.</summary>
/// <param name="Budget">The budget of network evaluations per sample.</param>
/// <param name="Sampler">The sampler's name (<see cref="SamplerNames"/>).</param>
/// <param name="Spacing">The spacing's name (<see cref="SamplerSpacings"/>).</param>
/// <param name="Steps">The step count.</param>
/// <param name="Nfe">Network evaluations per sample (≤ <paramref name="Budget"/>).</param>
/// <param name="Score">The metric's value.</param>
/// <param name="StdError">Its standard error.</param>
/// <param name="Seconds">Wall time of drawing the benchmark's samples.</param>
public sealed record RecordedSetting(int Budget, string Sampler, string Spacing, int Steps, int Nfe, double Score, double StdError, double Seconds);

/// <summary>
/// sampler.json in a model folder: the best sampler setting per budget of network evaluations, as measured by
/// <c>diffuse bench-samplers</c> (<see cref="Benchmarking.SamplerBenchmark"/>), and the default budget. <c>diffuse sample</c> and
/// <c>diffuse eval</c> use it when no sampler option is given (see <see cref="Choose"/>). Every read is validated: a
/// corrupt file or one naming an unknown sampler or spacing is a <see cref="DiffuseException"/> that names the file.
/// </summary>
/// <param name="Format">Always <see cref="FormatName"/>.</param>
/// <param name="Metric">The metric the settings were ranked by (e.g. "KDE score").</param>
/// <param name="Unit">The metric's unit.</param>
/// <param name="HigherIsBetter">The metric's direction.</param>
/// <param name="Count">Samples per setting.</param>
/// <param name="Seed">The sampling seed.</param>
/// <param name="ModelStep">The training step of the model that was measured.</param>
/// <param name="DefaultBudget">The budget used when no --nfe is given (see <see cref="Benchmarking.SamplerBenchmarkResult.DefaultBudget"/>).</param>
/// <param name="Reference">DDPM with every trained timestep.</param>
/// <param name="Best">The best setting of each budget, by ascending budget.</param>
public sealed record SamplerRecord(
    string Format, string Metric, string Unit, bool HigherIsBetter, int Count, ulong Seed, int ModelStep, int DefaultBudget,
    RecordedSetting Reference, RecordedSetting[] Best)
{
    /// <summary>The file name inside a model folder.</summary>
    public const string FileName = "sampler.json";

    /// <summary>The format marker of sampler.json.</summary>
    public const string FormatName = "diffuse-sampler/1";

    /// <summary>The JSON form of sampler.json, shared by <see cref="Benchmarking.SamplerRunStore"/>.</summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Sampler names such as "dpm++2m" stay readable (the default encoder writes + as \u002B).
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };


    /// <summary>The JSON text of the record.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Writes <see cref="FileName"/> into <paramref name="folder"/> atomically.</summary>
    public void Save(string folder) => AtomicFile.WriteAllText(Path.Combine(folder, FileName), ToJson() + "\n");

    /// <summary>
    /// Reads and validates <see cref="FileName"/> of <paramref name="folder"/>; null when the folder has none. Throws a
    /// <see cref="DiffuseException"/> naming the file when it is not valid JSON of this format, or names an unknown
    /// sampler or spacing, or has inconsistent budgets.
    /// </summary>
    public static SamplerRecord? Load(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        string again = $"Run {Param.Of("SamplerRecord.Save", "SamplerBenchmark.Run and SamplerRecord.Save", folder)} again, or delete the file.";
        SamplerRecord? record;
        try
        {
            record = JsonSerializer.Deserialize<SamplerRecord>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new DiffuseException($"{path} is not a valid sampler record ({e.Message}). {again}");
        }
        if (record is null || record.Format != FormatName || record.Reference is null || record.Best is null)
            throw new DiffuseException($"{path} is not a sampler record (expected format '{FormatName}' with a reference and best settings). {again}");
        if (record.Best.Length == 0) throw new DiffuseException($"{path} records no settings. {again}");
        var entries = record.Best.Prepend(record.Reference).ToArray();
        for (int i = 0; i < entries.Length; i++)
        {
            var entry = entries[i];
            if (entry is null) throw new DiffuseException($"{path} has an empty setting. {again}");
            string where = i == 0 ? "the reference" : $"budget {entry.Budget}";
            if (entry.Sampler is null || !SamplerNames.All.Contains(entry.Sampler, StringComparer.OrdinalIgnoreCase))
                throw new DiffuseException($"{path}: {where} names an unknown sampler '{entry.Sampler}' (known: {string.Join(", ", SamplerNames.All)}). {again}");
            if (SamplerSpacings.TryParse(entry.Spacing) is not { } spacing || !SamplerSpacings.Fits(SamplerNames.Parse(entry.Sampler), spacing))
                throw new DiffuseException($"{path}: {where} names spacing '{entry.Spacing}', which {entry.Sampler} does not take (known: {string.Join(", ", SamplerSpacings.All)}; ddpm and ddim take trailing, leading or linspace). {again}");
            if (entry.Budget < 1 || entry.Steps < 1 || entry.Nfe < 1 || entry.Nfe > entry.Budget)
                throw new DiffuseException($"{path}: {where} has budget {entry.Budget}, {entry.Steps} steps and {entry.Nfe} evaluations; each must be at least 1, with evaluations within the budget. {again}");
        }
        if (record.Best.Any(e => !double.IsFinite(e.Score)))
            throw new DiffuseException($"{path} records a best setting without a finite score. {again}");
        if (record.Best.Select(e => e.Budget).Distinct().Count() != record.Best.Length)
            throw new DiffuseException($"{path} records a budget twice. {again}");
        if (!record.Best.Any(e => e.Budget == record.DefaultBudget))
            throw new DiffuseException($"{path}: the default budget {record.DefaultBudget} is not among the recorded budgets ({string.Join(", ", record.Best.Select(e => e.Budget))}). {again}");
        return record with { Best = record.Best.OrderBy(e => e.Budget).ToArray() };
    }

    /// <summary>
    /// The recorded setting to sample with: for <paramref name="nfe"/>, the best setting of the largest recorded budget
    /// not above it (a <see cref="DiffuseException"/> when every budget is larger); without it, the best setting of
    /// <see cref="DefaultBudget"/>.
    /// </summary>
    public RecordedSetting Choose(int? nfe)
    {
        if (nfe is not { } limit) return Best.First(e => e.Budget == DefaultBudget);
        if (limit < 1) throw new DiffuseException($"{Param.Of("SamplerRecord.Choose(nfe)", "nfe")} must be at least 1 (got {limit}).");
        return Best.LastOrDefault(e => e.Budget <= limit)
            ?? throw new DiffuseException($"{Param.Of("SamplerRecord.Choose(nfe)", "nfe")} {limit} is below every budget in {FileName} (the smallest is {Best[0].Budget}): give {Param.Of("SamplerRecord.Choose(nfe)", "nfe")} {Best[0].Budget} or more, or run {Param.Of("SamplerBenchmark.Run")} with a budget of {limit}.");
    }

    /// <summary>The sampler setting of a validated entry.</summary>
    public static SamplerSetting ToSetting(RecordedSetting entry) =>
        new(SamplerNames.Parse(entry.Sampler), SamplerSpacings.Parse(entry.Spacing), entry.Steps);
}
