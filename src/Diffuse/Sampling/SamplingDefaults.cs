using Diffuse.Schedules;

namespace Diffuse.Sampling;

/// <summary>A sampler setting chosen for a model, and why it was chosen.</summary>
/// <param name="Options">The sampler options.</param>
/// <param name="Description">What the setting is and where it came from, e.g. "dpm++2m, logsnr, 50 steps (the default for images)".</param>
/// <param name="Recorded">The setting of the model's sampler.json it came from, or null.</param>
public sealed record ChosenSampler(SamplerOptions Options, string Description, RecordedSetting? Recorded = null);

/// <summary>
/// The defaults of sampling, one source for the library and the command line: the setting that
/// <c>bench-samplers</c> recorded in the model's sampler.json when there is one; otherwise, for images, 50
/// DPM-Solver++(2M) steps on log-SNR-uniform noise levels (1,000 DDPM steps take minutes per batch on a CPU; on the
/// shipped Fashion-MNIST model 50 steps gave FD 4.2 where 20 gave 6.3–8.2, docs/results.md), and for tables DDPM
/// over every trained timestep (cheap for an MLP, and the reference every other sampler is measured against).
/// </summary>
public static class SamplingDefaults
{
    /// <summary>Steps of the default image sampler.</summary>
    public const int ImageSteps = 50;

    /// <summary>
    /// The classifier-free guidance scale used when none is given: 1.5, the one of 1, 1.5 and 2 at which the shipped
    /// Fashion-MNIST model met both FD ≤ 3× its floor and class accuracy ≥ 90 % (docs/results.md).
    /// </summary>
    public const double Guidance = 1.5;

    /// <summary>The default sampler of image models without a sampler.json.</summary>
    public static SamplerOptions Image { get; } = new(SamplerKind.DpmSolver2M, ImageSteps, Spacing: SamplerSpacing.LogSnr);

    /// <summary>The default sampler of table models without a sampler.json: DDPM over every trained timestep.</summary>
    public static SamplerOptions Table { get; } = new();

    /// <summary>
    /// The sampler for a model: the best setting that sampler.json in <paramref name="folder"/> records for the largest
    /// budget up to <paramref name="nfe"/> network evaluations (its default budget when <paramref name="nfe"/> is null);
    /// without that file, <see cref="Image"/> or <see cref="Table"/>. Options that the recorded setting does not fix
    /// (clipping, DDPM's variance, η) come from <paramref name="baseOptions"/>.
    /// </summary>
    /// <param name="isImage">Whether the model generates images.</param>
    /// <param name="schedule">The model's noise schedule (to describe the setting).</param>
    /// <param name="folder">The model's folder, or null for a model that was not loaded from one.</param>
    /// <param name="nfe">A budget of network evaluations per sample, or null.</param>
    /// <param name="baseOptions">Options to start from (default: <see cref="SamplerOptions"/>' defaults).</param>
    /// <exception cref="DiffuseException">
    /// sampler.json is invalid, or <paramref name="nfe"/> is given without one, or is below every recorded budget.
    /// </exception>
    public static ChosenSampler For(bool isImage, NoiseSchedule schedule, string? folder, int? nfe = null, SamplerOptions? baseOptions = null)
    {
        if (nfe is < 1) throw new DiffuseException($"{Param.Of("SamplerRecord.Choose(nfe)", "nfe")} must be at least 1 (got {nfe}).");
        var defaults = baseOptions ?? new SamplerOptions();
        var record = folder is null ? null : SamplerRecord.Load(folder);
        if (record is null)
        {
            if (nfe is { } n)
                throw new DiffuseException($"{Param.Of("SamplerRecord.Choose(nfe)", "nfe")} {n} picks a setting measured by {Param.Of("SamplerBenchmark.Run")}, but {folder ?? "this model"} has no {SamplerRecord.FileName}: run {Param.Of("SamplerBenchmark.Run")} first, or choose a sampler and its steps.");
            if (isImage)
            {
                var fast = defaults with { Kind = Image.Kind, Steps = Image.Steps, Spacing = Image.Spacing };
                return new(fast, $"{SamplerSpacings.Describe(fast, schedule)} (the default for images; bench-samplers measures others)");
            }
            return new(defaults, $"{SamplerSpacings.Describe(defaults, schedule)} (the default; bench-samplers finds faster settings)");
        }
        var entry = record.Choose(nfe);
        var chosen = SamplerRecord.ToSetting(entry).ToOptions(defaults);
        string why = nfe is null ? $"budget {entry.Budget}" : $"budget {entry.Budget} for {nfe} network evaluations";
        return new(chosen, $"{SamplerSpacings.Describe(chosen, schedule)} (from bench-samplers, {why})", entry);
    }
}
