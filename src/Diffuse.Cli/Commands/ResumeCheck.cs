using System.Globalization;
using Diffuse.Configuration;
using Diffuse.Models;
using Diffuse.Parameterization;

namespace Diffuse.Cli.Commands;

/// <summary>
/// What <c>train --resume</c> accepts: a resumed run continues with the settings recorded in its config.json, so an
/// option that would change the run (learning rate, batch, network, schedule, seed, …) to another value than the
/// recorded one is refused, naming both values; the same value is accepted (scripts repeat their command line with
/// --resume), and --steps extends the run. Options that do not change the run (--threads, --device, --preview-every)
/// apply as usual.
/// </summary>
internal static class ResumeCheck
{
    /// <summary>Throws a <see cref="DiffuseException"/> for the first given option whose value differs from <paramref name="config"/>'s.</summary>
    public static void Refuse(TrainSettings s, DiffusionModelConfig config)
    {
        var t = config.Training;
        var checks = new List<(string Flag, bool Given, string Value, string Recorded)>
        {
            ("--batch", s.Batch.HasValue, F(s.Batch), F(t.BatchSize)),
            ("--lr", s.LearningRate.HasValue, F(s.LearningRate), F(t.LearningRate)),
            ("--warmup", s.Warmup.HasValue, F(s.Warmup), F(t.WarmupSteps)),
            ("--ema", s.Ema.HasValue, F(s.Ema), F(t.EmaDecay)),
            ("--min-snr", s.MinSnr.HasValue, F(s.MinSnr), F(t.MinSnrGamma)),
            ("--seed", s.Seed != 0, F(s.Seed), F(t.Seed)),
            ("--accumulate", s.Accumulate.HasValue, F(s.Accumulate), F(t.GradientAccumulation)),
            ("--label-dropout", s.LabelDropout.HasValue, F(s.LabelDropout), F(t.LabelDropout)),
            ("--checkpoint-every", s.CheckpointEvery.HasValue, F(s.CheckpointEvery), F(t.CheckpointEvery)),
            ("--flip", s.Flip, "on", t.HorizontalFlip ? "on" : "off"),
            ("--schedule", s.Schedule is not null, s.Schedule?.Trim().ToLowerInvariant() ?? "", config.Schedule.Kind.ToString().ToLowerInvariant()),
            ("--timesteps", s.Timesteps != 1000, F(s.Timesteps), F(config.Schedule.Timesteps)),
            ("--zero-terminal-snr", s.ZeroTerminalSnr, "on", config.Schedule.ZeroTerminalSnr ? "on" : "off"),
            ("--prediction", s.Prediction.Trim().ToLowerInvariant() is not ("eps" or "epsilon"), Parse.Prediction(s.Prediction).ToString().ToLowerInvariant(),
                config.Prediction.ToString().ToLowerInvariant()),
        };
        if (config.Network is MlpConfig mlp)
        {
            checks.Add(("--width", s.Width.HasValue, F(s.Width), F(mlp.Width)));
            checks.Add(("--depth", s.Depth.HasValue, F(s.Depth), F(mlp.Depth)));
            checks.Add(("--holdout", s.Holdout != 0.1, F(s.Holdout), F(config.Data.Holdout)));
        }
        if (config.Network is UNetConfig unet)
        {
            checks.Add(("--channels", s.BaseChannels.HasValue, F(s.BaseChannels), F(unet.BaseChannels)));
            checks.Add(("--channel-mult", s.ChannelMult is not null, s.ChannelMult is null ? "" : string.Join(",", Parse.IntList(s.ChannelMult, "--channel-mult")),
                string.Join(",", unet.ChannelMultipliers)));
            checks.Add(("--blocks", s.Blocks.HasValue, F(s.Blocks), F(unet.BlocksPerLevel)));
            checks.Add(("--attention", s.Attention is not null, Attention(s.Attention), unet.AttentionResolutions.Length == 0 ? "none" : string.Join(",", unet.AttentionResolutions)));
            checks.Add(("--dropout", s.Dropout.HasValue, F(s.Dropout), F(unet.Dropout)));
            checks.Add(("--unconditional", s.Unconditional, "on", unet.NumClasses == 0 ? "on" : "off"));
        }
        foreach (var (flag, given, value, recorded) in checks)
            if (given && value != recorded)
                throw new DiffuseException($"{flag} {value} would change the run in '{s.Out}', which was started with {flag} {recorded}: --resume continues a run with its recorded settings. Drop {flag} (or give {recorded}), or start a new run in another --out.");
    }

    private static string Attention(string? value) =>
        value is null ? "" : value.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? "none" : string.Join(",", Parse.IntList(value, "--attention"));

    private static string F(double? value) => value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "none";

    private static string F(int? value) => value is { } v ? v.ToString(CultureInfo.InvariantCulture) : "none";

    private static string F(ulong value) => value.ToString(CultureInfo.InvariantCulture);
}
