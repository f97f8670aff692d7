using System.ComponentModel;
using Diffuse.Editing;
using Diffuse.Sampling;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse inpaint</c>.</summary>
public sealed class InpaintSettings : ImageEditingSettings
{
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
        var schedule = new RePaintSchedule(settings.Resample, settings.Jump);
        schedule.Validate();
        var options = settings.EditingSampler();
        var (model, _) = settings.LoadModel("inpaint");
        using (model)
        {
            var path = EditingPath.Resolve(options, model.Schedule, deterministic: false);
            long? only = settings.ClassFor(model);
            double guidance = settings.Guidance ?? SamplingDefaults.Guidance;
            using var scope = NewDisposeScope();
            var mask = EditingIo.Mask(settings.Mask, settings.MaskRect, model);
            var (images, _, names) = EditingIo.Load(settings.Image!, model, settings.Resize, settings.Count, "--image");
            int count = (int)images.shape[0];
            long[]? classes = only is { } k ? Enumerable.Repeat(k, count).ToArray() : null;
            double filled = 1 - mask.mean().item<float>();
            string method = settings.Resample == 1 ? "the replacement method" : $"RePaint (resample {settings.Resample}, jump {settings.Jump})";
            CliContext.Out.WriteLine($"inpainting {filled * 100:0}% of {count} images by {method} with {SamplerSpacings.Describe(options, model.Schedule)}{(only is { } c ? $", class {c} ({model.ClassNames[(int)c]}), guidance {guidance:0.##}" : model.ClassCount > 0 ? ", unconditional" : "")}");
            var completed = EditingIo.WithProgress("inpaint", EditingIo.Total(schedule.StepCount(path.Steps), count), cancellationToken, (report, token) =>
                model.Inpaint(images, mask, settings.Seed, options, schedule, classes, guidance, report, cancellationToken: token));
            if (Path.GetExtension(settings.Out!).Length > 0)
            {
                var masked = images * mask;   // the region to fill shown as mid-grey (0 in the model range)
                EditingIo.Write(settings.Out!, cat(new[] { images, masked, completed }), names, count, new[] { "source", "masked", "filled" });
            }
            else EditingIo.Write(settings.Out!, completed, names.Select(n => n + "-inpainted").ToArray(), count);
        }
        return 0;
    }
}
