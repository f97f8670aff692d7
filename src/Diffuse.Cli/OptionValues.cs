using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Spectre.Console.Cli;

namespace Diffuse.Cli;

/// <summary>
/// Says which option a value that did not convert belongs to and what it must be: the parser itself only reports
/// "Failed to convert '99999999999' to Nullable`1", naming neither the option nor the range.
/// </summary>
internal static partial class OptionValues
{
    [GeneratedRegex(@"^Failed to convert '(?<value>.*)' to (?<type>[^ ]+?)\.?$", RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex ConversionFailure();

    /// <summary>The message for a failed conversion of an option's value, or null when <paramref name="message"/> is about something else.</summary>
    public static string? Describe(string message, IReadOnlyList<string> args)
    {
        var match = ConversionFailure().Match(message);
        if (!match.Success) return null;
        string value = match.Groups["value"].Value;
        string? option = null;
        for (int i = 0; i < args.Count && option is null; i++)
        {
            if (i > 0 && args[i] == value && args[i - 1].StartsWith("--", StringComparison.Ordinal)) option = args[i - 1];
            else if (args[i].StartsWith("--", StringComparison.Ordinal) && args[i].EndsWith("=" + value, StringComparison.Ordinal)) option = args[i][..args[i].IndexOf('=')];
        }
        Type? type = option is null ? null : OptionType(option[2..]);
        string what = (Nullable.GetUnderlyingType(type ?? typeof(object)) ?? type) switch
        {
            Type t when t == typeof(int) => $"a whole number from {int.MinValue.ToString("N0", CultureInfo.InvariantCulture)} to {int.MaxValue.ToString("N0", CultureInfo.InvariantCulture)}",
            Type t when t == typeof(long) => $"a whole number from {long.MinValue.ToString("N0", CultureInfo.InvariantCulture)} to {long.MaxValue.ToString("N0", CultureInfo.InvariantCulture)}",
            Type t when t == typeof(ulong) => $"a whole number from 0 to {ulong.MaxValue.ToString("N0", CultureInfo.InvariantCulture)}",
            Type t when t == typeof(double) || t == typeof(float) => "a number, such as 0.5, -3 or 1e-4",
            _ => "a value of another form",
        };
        return $"{option ?? "an option"} must be {what} (got '{value}')";
    }

    /// <summary>The property type of the option named <paramref name="longName"/> in any command's settings.</summary>
    private static Type? OptionType(string longName) => typeof(OptionValues).Assembly.GetTypes()
        .SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
        .FirstOrDefault(p => p.GetCustomAttribute<CommandOptionAttribute>()?.LongNames.Contains(longName, StringComparer.Ordinal) == true)
        ?.PropertyType;
}
