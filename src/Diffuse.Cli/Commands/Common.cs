using System.ComponentModel;
using System.Globalization;
using Diffuse.Parameterization;
using Diffuse.Runtime;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Spectre.Console.Cli;

namespace Diffuse.Cli.Commands;

/// <summary>Options every command accepts.</summary>
public class CommonSettings : CommandSettings
{
    /// <summary>Intra-op threads for libtorch.</summary>
    [CommandOption("--threads <N>")]
    [Description("CPU threads for libtorch (default: $DIFFUSE_THREADS if set, else 1 for tables, where one thread is fastest, and every core for image models, whose convolutions scale; see docs/benchmarks.md).")]
    public int? Threads { get; init; }

    /// <summary>The device to run on.</summary>
    [CommandOption("--device <DEVICE>")]
    [Description("cpu (default), cuda or cuda:N. CUDA needs a CUDA build of libtorch in place of the CPU build (README, Install).")]
    public string? Device { get; init; }

    /// <summary>The device of --device (checked: CUDA must be available); the CPU by default.</summary>
    public TorchSharp.torch.Device TorchDevice() => Device is null ? Devices.Cpu : Devices.Parse(Device);

    /// <summary>
    /// Applies the thread setting (<see cref="TorchThreads"/>): --threads when given (fixed for every library call of the
    /// command), else the DIFFUSE_THREADS environment variable, else 1 for tables (for a small MLP, more threads only add
    /// synchronisation) and every core for images (the U-Net's convolutions ran 1.8× faster on 2 threads than on 1).
    /// </summary>
    public void ApplyThreads(bool imageModel = false)
    {
        if (Threads is { } n) TorchThreads.Fixed = n;
        TorchThreads.Apply(imageModel);
    }
}

/// <summary>Sampler options shared by sample, eval and demo.</summary>
public class SamplerSettings : CommonSettings
{
    /// <summary>Sampler name.</summary>
    [CommandOption("--sampler <NAME>")]
    [Description("ddpm, ddim, euler, heun, euler-ancestral, dpm++2m, dpm++3m, dpm++2m-sde or unipc ('diffuse samplers' lists each with its cost and the options it accepts). Default: the setting recorded by 'diffuse bench-samplers' in the model's sampler.json, else ddpm over every trained timestep.")]
    public string? Sampler { get; init; }

    /// <summary>Number of steps.</summary>
    [CommandOption("--steps <N>")]
    [Description("Sampling steps (default: as many as trained timesteps). Heun makes two network evaluations per step.")]
    public int? Steps { get; init; }

    /// <summary>Budget of network evaluations.</summary>
    [CommandOption("--nfe <N>")]
    [Description("Network evaluations per sample: without --sampler, the best setting recorded by 'diffuse bench-samplers' for the largest budget up to N; with --sampler, the most steps that cost at most N.")]
    public int? Nfe { get; init; }

    /// <summary>Noise levels of the σ-space samplers.</summary>
    [CommandOption("--sigmas <SPACING|LIST>")]
    [Description("Noise levels: a spacing name as --spacing, or a decreasing comma-separated list such as 80,10,1,0.1 (σ-space samplers: all but ddpm and ddim).")]
    public string? Sigmas { get; init; }

    /// <summary>Karras ρ.</summary>
    [CommandOption("--rho <R>")]
    [Description("ρ of the karras spacing (default 7).")]
    public double? Rho { get; init; }

    /// <summary>Stochastic churn.</summary>
    [CommandOption("--s-churn <S>")]
    [Description("Stochastic churn S_churn of euler and heun (Karras et al. 2022, Algorithm 2), e.g. 40. Off by default.")]
    public double? SChurn { get; init; }

    /// <summary>Churn range, lower end.</summary>
    [CommandOption("--s-tmin <S>")]
    [Description("Lowest noise level that is churned (default 0).")]
    public double? STmin { get; init; }

    /// <summary>Churn range, upper end.</summary>
    [CommandOption("--s-tmax <S>")]
    [Description("Highest noise level that is churned (default: no limit).")]
    public double? STmax { get; init; }

    /// <summary>Churn noise scale.</summary>
    [CommandOption("--s-noise <S>")]
    [Description("Scale of the churn noise S_noise (default 1).")]
    public double? SNoise { get; init; }

    /// <summary>DDIM η.</summary>
    [CommandOption("--eta <E>")]
    [Description("DDIM stochasticity η (ddim only): 0 deterministic, 1 like DDPM. Default 0.")]
    public double? Eta { get; init; }

    /// <summary>Timestep spacing.</summary>
    [CommandOption("--spacing <NAME>")]
    [Description("Where the steps go: the levels of trailing (default), leading or linspace trained timesteps (every sampler), or karras (ρ = 7) or logsnr levels between the trained σ_max and σ_min (all but ddpm and ddim).")]
    public string? Spacing { get; init; }

    /// <summary>DDPM variance.</summary>
    [CommandOption("--variance <NAME>")]
    [Description("DDPM reverse variance (ddpm only): small (β̃, default) or large (β).")]
    public string Variance { get; init; } = "small";

    /// <summary>x0 clipping.</summary>
    [CommandOption("--clip <C>")]
    [Description("Clamp each step's x0 estimate to [[-C, C]] in standardised units (off by default).")]
    public double? Clip { get; init; }

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed: sample i depends only on (seed, i). Default 0.")]
    public ulong Seed { get; init; }

    /// <summary>Turns off the projection of x0 onto the data's range.</summary>
    [CommandOption("--no-clamp")]
    [Description("Do not project each step's x0 estimate onto the training data's bounding box (on by default; the exact denoiser always lies inside it).")]
    public bool NoClamp { get; init; }

    /// <summary>The sampler options these settings describe.</summary>
    public SamplerOptions ToSamplerOptions()
    {
        if (Steps is 0) throw new DiffuseException("--steps must be at least 1 (got 0); leave --steps out to sample over every trained timestep.");
        var kind = SamplerNames.Parse(Sampler ?? "ddpm", "--sampler");
        SamplerSpacing? spacing = Spacing is null ? null : SamplerSpacings.Parse(Spacing, "--spacing");
        double[]? list = null;
        if (Sigmas is not null)
        {
            (var named, list) = Parse.NoiseLevels(Sigmas);
            if (named is { } n)
            {
                if (spacing is { } s && s != n)
                    throw new DiffuseException($"--sigmas {Sigmas} and --spacing {Spacing} disagree: give one of them.");
                spacing = n;
            }
        }
        StochasticChurn? churn = null;
        if (SChurn is not null || STmin is not null || STmax is not null || SNoise is not null)
        {
            if (SChurn is null) throw new DiffuseException("--s-tmin, --s-tmax and --s-noise shape the churn: give --s-churn too.");
            churn = new StochasticChurn(SChurn.Value, STmin ?? 0, STmax ?? double.PositiveInfinity, SNoise ?? 1);
        }
        if (Rho is not null && spacing != SamplerSpacing.Karras) throw new DiffuseException("--rho applies to the karras spacing only (--spacing karras).");
        var options = new SamplerOptions(
            kind,
            Steps ?? 0,
            spacing ?? SamplerSpacing.Trailing,
            Eta ?? 0,
            Parse.Enum<DdpmVariance>("--variance", Variance),
            Clip,
            SigmaList: list,
            Rho: Rho ?? new SamplerOptions().Rho,
            Churn: churn);
        options.Validate();
        return options;
    }

    /// <summary>
    /// Whether an option that chooses the sampler or its steps was given (--sampler, --steps, --sigmas, --spacing, --eta,
    /// --rho or a churn option): then the recorded setting of sampler.json is not used.
    /// </summary>
    public bool ChoosesSampler =>
        Sampler is not null || Steps is not null || Sigmas is not null || Spacing is not null || Eta is not null || Rho is not null ||
        SChurn is not null || STmin is not null || STmax is not null || SNoise is not null;

    /// <summary>
    /// The sampler to use for <paramref name="model"/> loaded from <paramref name="folder"/>, and the line that says which
    /// (printed after "sampler: "). The rule: options that choose the sampler (<see cref="ChoosesSampler"/>) win, and
    /// with --nfe take the most steps within that many evaluations; otherwise the model's sampler.json (written by
    /// 'diffuse bench-samplers') gives the best setting of the largest budget up to --nfe, or of its default budget
    /// without --nfe; without sampler.json, DDPM over every trained timestep. --clip and --variance apply in every case.
    /// </summary>
    public (SamplerOptions Options, string Description) ResolveSampler(DiffusionModel model, string folder, bool imageDefault = false)
    {
        if (Nfe is < 1) throw new DiffuseException($"--nfe must be at least 1 (got {Nfe}).");
        var schedule = model.Schedule;
        if (ChoosesSampler)
        {
            var options = ToSamplerOptions();
            if (Nfe is { } budget)
            {
                if (Steps is not null) throw new DiffuseException("--nfe and --steps both set the cost of a sample: give one of them.");
                if (options.SigmaList is not null) throw new DiffuseException("--nfe and a --sigmas list both set the steps: give one of them.");
                options = options with { Steps = SamplerSetting.StepsForBudget(options, schedule, budget) };
            }
            return (options, $"{SamplerSpacings.Describe(options, schedule)} ({options.FunctionEvaluations(schedule)} network evaluations)");
        }
        if (Nfe is { } n && !File.Exists(Path.Combine(folder, SamplerRecord.FileName)))
            throw new DiffuseException($"--nfe {n} picks a setting measured by 'diffuse bench-samplers', but {folder} has no {SamplerRecord.FileName}: run 'diffuse bench-samplers --model {folder}' first, or give --sampler (with --nfe it then takes the most steps within {n} evaluations).");
        var chosen = SamplingDefaults.For(imageDefault && model.IsImage, schedule, folder, Nfe, ToSamplerOptions());
        if (chosen.Recorded is not { } entry) return (chosen.Options, chosen.Description);
        var record = SamplerRecord.Load(folder)!;
        if (record.ModelStep != model.Config.Step)
            CliContext.Out.WriteLine($"note: {SamplerRecord.FileName} was measured at training step {record.ModelStep}, the model is now at step {model.Config.Step}; run 'diffuse bench-samplers' again to update it.");
        string why = Nfe is null ? $"budget {entry.Budget}" : $"budget {entry.Budget} for --nfe {Nfe}";
        return (chosen.Options, $"{SamplerSpacings.Describe(chosen.Options, schedule)} (from bench-samplers, {why})");
    }
}

/// <summary>Parsing of option values with messages that list the choices.</summary>
public static class Parse
{
    /// <summary>Parses an enum value by its lower-case name (aliases: eps for epsilon).</summary>
    public static T Enum<T>(string option, string value) where T : struct, System.Enum
    {
        string key = value.Trim().ToLowerInvariant() switch { "eps" => "epsilon", var v => v };
        foreach (var candidate in System.Enum.GetValues<T>())
            if (string.Equals(candidate.ToString(), key, StringComparison.OrdinalIgnoreCase)) return candidate;
        var names = System.Enum.GetValues<T>().Select(v => v.ToString().ToLowerInvariant());
        throw new DiffuseException($"{option} must be one of {string.Join(", ", names)} (got '{value}').");
    }

    /// <summary>The schedule named by --schedule.</summary>
    public static ScheduleKind Schedule(string value)
    {
        string key = value.Trim().ToLowerInvariant();
        if (key == "custom") throw new DiffuseException("--schedule custom needs a β array: use the library API (ScheduleConfig with Betas).");
        foreach (var kind in new[] { ScheduleKind.Linear, ScheduleKind.Cosine, ScheduleKind.Sigmoid })
            if (kind.ToString().ToLowerInvariant() == key) return kind;
        throw new DiffuseException($"--schedule must be one of linear, cosine, sigmoid (got '{value}').");
    }

    /// <summary>
    /// The value of --sigmas: a spacing name (karras, logsnr), a timestep spacing (leading, trailing, linspace: the levels
    /// of those trained timesteps), or a comma-separated list of noise levels ("inf" allowed first).
    /// </summary>
    public static (SamplerSpacing? Spacing, double[]? List) NoiseLevels(string value)
    {
        string key = value.Trim().ToLowerInvariant();
        if (SamplerSpacings.TryParse(key) is { } spacing) return (spacing, null);
        var parts = key.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var list = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (parts[i] is "inf" or "∞") list[i] = double.PositiveInfinity;
            else if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out list[i]))
                throw new DiffuseException($"--sigmas must be karras, logsnr, leading, trailing, linspace or a comma-separated list of numbers (got '{value}').");
        }
        return (null, Sampling.NoiseLevels.Validate(list));
    }

    /// <summary>The prediction named by --prediction.</summary>
    public static Prediction Prediction(string value) => Enum<Prediction>("--prediction", value);

    /// <summary>Parses a comma-separated list of positive integers for <paramref name="option"/>.</summary>
    public static int[] IntList(string value, string option)
    {
        var parts = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var result = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out result[i]) || result[i] < 1)
                throw new DiffuseException($"{option} takes positive integers separated by commas, e.g. 1,2,2 (got '{value}').");
        if (result.Length == 0) throw new DiffuseException($"{option} needs at least one value, e.g. 1,2,2.");
        return result;
    }

    /// <summary>Formats a number for output with invariant culture.</summary>
    public static string F(double value, int digits = 4) => value.ToString("F" + digits, CultureInfo.InvariantCulture);
}
