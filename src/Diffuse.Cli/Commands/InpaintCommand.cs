using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse inpaint</c>.</summary>
public sealed class InpaintSettings : ImageEditingSettings
{
    /// <summary>Settings from the command line.</summary>
    public InpaintSettings()
    {
    }

    /// <summary>Settings given by a request to <c>diffuse serve</c> (internal: the command line builds settings by their one public constructor).</summary>
    internal InpaintSettings(EditingChoices choices) : base(choices)
    {
    }

    /// <summary>Mask.</summary>
    [CommandOption("--mask <FILE>")]
    [Description("A PNG of the images' size: white = keep, black = fill.")]
    public string? Mask { get; init; }

    /// <summary>Rectangle.</summary>
    [CommandOption("--mask-rect <X,Y,W,H>")]
    [Description("The rectangle to fill, in pixels from the top left, e.g. 7,7,14,14 (the centre of a 28×28 image).")]
    public string? MaskRect { get; init; }

    /// <summary>Resamplings.</summary>
    [CommandOption("--resample <R>")]
    [Description("RePaint: run every block of --jump steps R times, jumping back up between runs (default 1: the replacement method alone; the paper uses 10).")]
    public int Resample { get; init; } = 1;

    /// <summary>Jump length.</summary>
    [CommandOption("--jump <J>")]
    [Description("RePaint: steps per block (default 10).")]
    public int Jump { get; init; } = 10;
}

/// <summary><c>diffuse inpaint</c>: fill a masked region by the replacement method or RePaint.</summary>
public sealed class InpaintCommand : Command<InpaintSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, InpaintSettings settings, CancellationToken cancellationToken)
    {
        EditingIo.CheckOut(settings.Out);
        new RePaintSchedule(settings.Resample, settings.Jump).Validate();
        settings.EditingSampler();
        var (model, _) = settings.LoadModel("inpaint");
        using (model)
        {
            var plan = InpaintPlan.For(settings, model);
            using var scope = NewDisposeScope();
            var mask = EditingIo.Mask(settings.Mask, settings.MaskRect, model);
            var (images, _, names) = EditingIo.Load(settings.Image!, model, settings.Resize, settings.Count, "--image");
            plan.Run(model, images, mask, names, Path.GetExtension(settings.Out!).Length > 0, EditingIo.Console(cancellationToken)).Save(settings.Out!);
        }
        return 0;
    }
}

/// <summary>
/// What <c>diffuse inpaint</c> (and the server's inpaint route) does with its options, checked against the model before
/// any work: the replacement method, or RePaint with --resample and --jump, along the sampler's levels.
/// </summary>
/// <param name="Options">The sampler.</param>
/// <param name="Path">Its σ-space path.</param>
/// <param name="Schedule">RePaint's resampling.</param>
/// <param name="Seed">The seed of the noise.</param>
/// <param name="Only">--class, or null.</param>
/// <param name="Guidance">The guidance scale.</param>
public sealed record InpaintPlan(SamplerOptions Options, EditingPath Path, RePaintSchedule Schedule, ulong Seed, long? Only, double Guidance)
{
    /// <summary>Checks <paramref name="settings"/> against <paramref name="model"/>.</summary>
    /// <exception cref="DiffuseException">An option is invalid (--resample 0, say).</exception>
    public static InpaintPlan For(InpaintSettings settings, DiffusionModel model)
    {
        var schedule = new RePaintSchedule(settings.Resample, settings.Jump);
        schedule.Validate();
        var options = settings.EditingSampler();
        var path = EditingPath.Resolve(options, model.Schedule, deterministic: false);
        return new InpaintPlan(options, path, schedule, settings.Seed, settings.ClassFor(model), settings.Guidance ?? SamplingDefaults.Guidance);
    }

    /// <summary>Network evaluations per image (every block <see cref="RePaintSchedule.Resample"/> times).</summary>
    public long Evaluations(DiffusionModel model) => (long)Options.FunctionEvaluations(model.Schedule) * Schedule.Resample;

    /// <summary>
    /// Fills <paramref name="images"/> (model range) where <paramref name="mask"/> is 0, into a grid of source, masked
    /// source and completion (<paramref name="grid"/>), or one PNG per completion.
    /// </summary>
    public EditingOutput Run(DiffusionModel model, Tensor images, Tensor mask, IReadOnlyList<string> names, bool grid, EditingRun run)
    {
        int count = (int)images.shape[0];
        long[]? classes = Only is { } k ? Enumerable.Repeat(k, count).ToArray() : null;
        double filled = 1 - mask.mean().item<float>();
        string method = Schedule.Resample == 1 ? "the replacement method" : $"RePaint (resample {Schedule.Resample}, jump {Schedule.Jump})";
        run.Log($"inpainting {filled * 100:0}% of {count} images by {method} with {SamplerSpacings.Describe(Options, model.Schedule)}{(Only is { } c ? $", class {c} ({model.ClassNames[(int)c]}), guidance {Guidance:0.##}" : model.ClassCount > 0 ? ", unconditional" : "")}");
        var completed = run.Progress("inpaint", EditingIo.Total(Schedule.StepCount(Path.Steps), count), run.CancellationToken, (report, token) =>
            model.Inpaint(images, mask, Seed, Options, Schedule, classes, Guidance, report, cancellationToken: token));
        if (!grid) return EditingIo.Render(false, completed, names.Select(n => n + "-inpainted").ToArray(), count);
        var masked = images * mask;   // the region to fill shown as mid-grey (0 in the model range)
        return EditingIo.Render(true, cat(new[] { images, masked, completed }), names, count, new[] { "source", "masked", "filled" });
    }
}
